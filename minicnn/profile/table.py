"""Reading a profile: totals, shares, the one-line reading and the table."""

from __future__ import annotations


def totals(rows) -> dict:
    """Sums over the rows: FLOPs, bytes, work bytes, times; the step's time (loss and update
    included when ``rows`` is a :class:`Profile`), images per second, and each layer type's
    share of the step (``shares``, e.g. ``{"Conv2D": 0.87, ...}``)."""
    step = getattr(rows, "step", {})
    layer_ms = sum(r["fwd_ms"] + r["bwd_ms"] for r in rows)
    step_ms = step.get("step_ms", layer_ms)
    shares: dict = {}
    for r in rows:
        shares[r["type"]] = shares.get(r["type"], 0.0) + r["share"]
    flops = sum(r["fwd_flops"] + r["bwd_flops"] for r in rows)
    out = {
        "params": sum(r["params"] for r in rows),
        "fwd_flops": sum(r["fwd_flops"] for r in rows),
        "bwd_flops": sum(r["bwd_flops"] for r in rows),
        "bytes": sum(r["bytes"] for r in rows),
        "work_bytes": sum(r["work_bytes"] for r in rows),
        "fwd_ms": sum(r["fwd_ms"] for r in rows),
        "bwd_ms": sum(r["bwd_ms"] for r in rows),
        "layer_ms": layer_ms,
        "loss_ms": step.get("loss_ms", 0.0),
        "update_ms": step.get("update_ms", 0.0),
        "step_ms": step_ms,
        "gflops": flops / step_ms / 1e6 if step_ms else 0.0,
        "shares": shares,
    }
    if "batch_size" in step and step_ms:
        out["images_per_second"] = step["batch_size"] / (step_ms / 1e3)
    if step.get("peak_gflops"):
        out["peak_fraction"] = out["gflops"] / step["peak_gflops"]
    return out


def _mb(n: float) -> str:
    return f"{n / 1e6:.0f} MB" if n >= 10e6 else f"{n / 1e6:.1f} MB"


def reading(rows) -> str:
    """One line a learner can act on: which kind of layer takes the step, how close the
    slowest convolution comes to the machine's peak, and how big its patch matrix is (or that it
    has none: the shifted GEMMs of :mod:`minicnn.kernels.conv`)."""
    conv = [r for r in rows if r["type"] in ("Conv2D", "Residual")]  # a residual block is its convolutions
    if not conv:
        top = max(rows, key=lambda r: r["share"])
        return f"{top['share']:.0%} of the step is {top['layer']}"
    worst = max(conv, key=lambda r: r["fwd_ms"] + r["bwd_ms"])
    text = (
        f"{sum(r['share'] for r in conv):.0%} of the step is convolution"
        + (" (residual blocks whole)" if len(conv) > len([r for r in rows if r["type"] == "Conv2D"]) else "")
        + f"; {worst['layer'].rsplit(' ', 1)[0]} "
        f"(the slowest) runs at {worst['peak_fraction']:.0%} of peak"
    )
    if "cols" in worst["work"]:
        text += f"; its patch matrix is {_mb(worst['work']['cols'])}"
    elif "x_grid" in worst["work"]:
        text += f"; no patch matrix (shifted GEMMs over its {_mb(worst['work']['x_grid'])} input grid)"
    return text


def format_table(rows) -> str:
    """The profile as a fixed-width text table, with a totals line."""
    header = (
        "#",
        "layer",
        "output shape",
        "params",
        "fwd GFLOP",
        "bwd GFLOP",
        "work MB",
        "fwd ms",
        "bwd ms",
        "share",
        "GFLOP/s",
        "% peak",
        "GB/s",
    )
    lines = []
    for r in rows:
        shape = "(" + ", ".join("None" if d is None else str(d) for d in r["output_shape"]) + ")"
        flops = r["fwd_flops"] > 0
        lines.append(
            (
                str(r["index"]),
                r["layer"] + ("" if r["dx"] or not flops else " (no dx)"),
                shape,
                f"{r['params']:,}",
                f"{r['fwd_flops'] / 1e9:.3f}" if flops else "-",
                f"{r['bwd_flops'] / 1e9:.3f}" if flops else "-",
                f"{r['work_bytes'] / 1e6:.1f}",
                f"{r['fwd_ms']:.2f}",
                f"{r['bwd_ms']:.2f}",
                f"{r['share']:.1%}",
                f"{r['gflops']:.1f}" if flops else "-",
                f"{r['peak_fraction']:.0%}" if flops else "-",
                f"{r['gbps']:.1f}" if r["gbps"] else "-",
            )
        )
    t = totals(rows)
    lines.append(
        (
            "",
            "all layers",
            "",
            f"{t['params']:,}",
            f"{t['fwd_flops'] / 1e9:.3f}",
            f"{t['bwd_flops'] / 1e9:.3f}",
            f"{t['work_bytes'] / 1e6:.1f}",
            f"{t['fwd_ms']:.2f}",
            f"{t['bwd_ms']:.2f}",
            f"{t['layer_ms'] / t['step_ms']:.1%}",
            f"{t['gflops']:.1f}",
            f"{t['peak_fraction']:.0%}" if "peak_fraction" in t else "-",
            "",
        )
    )
    widths = [max(len(h), *(len(line[k]) for line in lines)) for k, h in enumerate(header)]
    left = {1, 2}

    def fmt(fields):
        return "  ".join(
            f.ljust(w) if k in left else f.rjust(w) for k, (f, w) in enumerate(zip(fields, widths))
        ).rstrip()

    rule = "-" * len(fmt(header))
    return "\n".join([fmt(header), rule, *map(fmt, lines[:-1]), rule, fmt(lines[-1])])


def report(rows) -> str:
    """What ``python -m minicnn.profile`` prints: the setting, the table, the totals, the reading."""
    s, t = rows.step, totals(rows)
    head = (
        f"Training step of {s['batch_size']} images ({s['dtype']}), {s['backend']} on {s['device']}; "
        f"median of {s['repeats']} after 1 warm-up.\n"
        f"Matrix-product peak here: {s['peak_gflops']:.1f} GFLOP/s (float32 GEMM)."
    )
    tail = (
        f"Step: {t['step_ms']:.1f} ms = layers {t['layer_ms']:.1f} + loss {t['loss_ms']:.2f} + "
        f"Adam update {t['update_ms']:.2f} ms; {t.get('images_per_second', 0):.0f} images/s; "
        f"{(t['fwd_flops'] + t['bwd_flops']) / 1e9:.2f} GFLOP at {t['gflops']:.1f} GFLOP/s.\n"
        f"FLOPs: multiply-add = 2, matrix products only; the first layer's backward computes dW "
        f"alone (no dx). Element-wise layers: GB/s of the least traffic their arrays imply.\n"
        f"Reading: {reading(rows)}."
    )
    return f"{head}\n\n{format_table(rows)}\n\n{tail}"
