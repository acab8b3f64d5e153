"""The built site loads nothing from another host: no script, style sheet, font or image by URL.

    python docs/check_offline.py docs/_build/html

Links a reader may follow (``<a href="https://...">``) are fine; what a page *loads* is not.
Exits 1, naming each file and reference, if anything would be fetched from the network.
"""

import re
import sys
from pathlib import Path

LOADS = [
    re.compile(r"<script[^>]+src=[\"'](https?:)?//", re.I),
    re.compile(r"<link[^>]+href=[\"'](https?:)?//[^\"']*[\"'][^>]*>", re.I),
    re.compile(r"<img[^>]+src=[\"'](https?:)?//", re.I),
    re.compile(r"url\(\s*[\"']?(https?:)?//", re.I),
    re.compile(r"@import\s+[\"'](https?:)?//", re.I),
]


def remote_loads(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*")):
        if path.suffix not in (".html", ".css", ".js") or not path.is_file():
            continue
        text = path.read_text(errors="replace")
        for pattern in LOADS:
            for match in pattern.finditer(text):
                snippet = text[match.start() : match.start() + 120].split("\n")[0]
                if path.suffix == ".js" and not snippet.lower().startswith(("url(", "@import")):
                    continue  # scripts mention URLs in strings and comments; only CSS inside them counts
                if "<link" in snippet.lower() and not re.search(r"rel=[\"'](stylesheet|preload|icon)", snippet):
                    continue  # canonical and similar links load nothing
                found.append(f"{path.relative_to(root)}: {snippet}")
    return found


if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/_build/html")
    loads = remote_loads(root)
    for line in loads:
        print(line)
    print(f"{len(loads)} remote loads in {root}")
    sys.exit(1 if loads else 0)
