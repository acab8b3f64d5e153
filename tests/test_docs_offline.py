"""docs/check_offline.py finds what a built page would fetch from another host (CI runs it on the site)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("check_offline", ROOT / "docs" / "check_offline.py")
check_offline = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_offline)


def test_remote_scripts_styles_fonts_and_images_are_found_and_links_are_not(tmp_path):
    (tmp_path / "page.html").write_text(
        '<script src="https://cdn.example.org/mathjax.js"></script>\n'
        '<link rel="stylesheet" href="//fonts.example.org/css">\n'
        '<img src="http://example.org/a.png">\n'
        '<a href="https://example.org/docs">a link a reader may follow</a>\n'
        '<link rel="canonical" href="https://example.org/page.html">\n'
        '<script src="_static/local.js"></script>\n'
    )
    (tmp_path / "site.css").write_text("@font-face { src: url('https://fonts.example.org/x.woff2'); }\n")
    (tmp_path / "app.js").write_text('const doc = "https://example.org"; // a string, not a load\n')
    found = check_offline.remote_loads(tmp_path)
    assert len(found) == 4, found
    assert any("mathjax" in f for f in found) and any("site.css" in f for f in found)
