"""The printed tables of the per-layer and whole-model timings (the memory table is in memory.py)."""

from __future__ import annotations


def print_layer_table(result, compare: bool):
    b = result["batch_size"]
    print(f"== Per layer, batch {b}: forward (training=True) and backward, median ms ==")
    head = f"{'#':>2}  {'layer':<16} {'output shape':<18} {'fwd':>8} {'bwd':>8}"
    if compare:
        head += f"  | {'torch fwd':>9} {'torch bwd':>9}  | {'fwd x':>6} {'bwd x':>6}"
    print(head)
    print("-" * len(head))
    totals = {k: 0.0 for k in ("minicnn_fwd_ms", "minicnn_bwd_ms", "torch_fwd_ms", "torch_bwd_ms")}

    def line(idx, name, shape, r, mark=""):
        text = f"{idx:>2}  {name:<16} {shape:<18} {r['minicnn_fwd_ms']:>8.2f} {r['minicnn_bwd_ms']:>7.2f}{mark or ' '}"
        if compare:
            text += (
                f"  | {r['torch_fwd_ms']:>9.2f} {r['torch_bwd_ms']:>8.2f}{mark or ' '}"
                f"  | {ratio(r['minicnn_fwd_ms'], r['torch_fwd_ms']):>6} "
                f"{ratio(r['minicnn_bwd_ms'], r['torch_bwd_ms']):>6}"
            )
        print(text)

    layer_rows = [r for r in result["rows"] if r["index"] is not None]
    for r in layer_rows:
        line(
            r["index"],
            r["layer"],
            "(" + ", ".join(map(str, r["output_shape"])) + ")",
            r,
            "" if r["input_grad"] else "*",
        )
        for k in totals:
            totals[k] += r.get(k, 0.0)
    print("-" * len(head))
    line("", "all layers", "", totals)
    for r in result["rows"]:
        if r["index"] is None:
            line("", r["layer"][:16], "", r)
    print("* layer 0: backward computes no input gradient (dx), in both libraries, as in training.")
    if compare:
        print("  fwd x / bwd x: time ratio minicnn / PyTorch (> 1: minicnn is slower).")
    print()


def ratio(a, b) -> str:
    """``a / b`` to one decimal, "-" when ``b`` is not positive."""
    return f"{a / b:.1f}" if b > 0 else "-"


def print_model_table(results, compare: bool):
    print("== Whole model: images/second (median step time) ==")
    head = f"{'batch':>5}  {'mode':<10} {'minicnn':>20}"
    if compare:
        head += f"  {'PyTorch':>20}  {'minicnn/PyTorch':>15}"
    print(head)
    print("-" * len(head))
    rows = (
        ("train", "minicnn", "train step"),
        ("train", "minicnn-shards", "  shards"),
        ("train", "minicnn-fit", "  fit"),
        ("inference", "minicnn", "inference"),
        ("inference", "minicnn-predict", "  predict"),
    )
    for r in results:
        for mode, name, label in rows:
            if name not in r[mode]:
                continue
            m = r[mode][name]
            text = f"{r['batch_size']:>5}  {label:<10} {m['images_per_s']:>9.0f} ({m['step_ms']:7.1f} ms)"
            if compare:
                t = r[mode]["torch"]
                text += (
                    f"  {t['images_per_s']:>9.0f} ({t['step_ms']:7.1f} ms)"
                    f"  {m['images_per_s'] / t['images_per_s']:>15.2f}"
                )
            print(text)
    print(
        "train step = one pass: forward(training=True) + softmax cross-entropy forward/backward + backward + Adam;\n"
        "  shards = the step fit runs on NumPy (16-image shards on --threads threads, BLAS at 1 thread each);\n"
        "  fit = model.fit over 4 batches of host data, per batch; predict = model.predict likewise;\n"
        "  inference = one forward(training=False) under no_grad."
    )
    if compare:
        print(
            "PyTorch: its train step / eval-mode forward, 4 in a row per repeat (per step), the reference for every\n"
            "  minicnn row.\n"
            "minicnn/PyTorch: throughput ratio (< 1: minicnn is slower)."
        )
    print()


def print_anchor_table(results, anchors, notes):
    """minicnn's ``fit``/``predict`` beside the other anchors (Keras, onnxruntime), same alternating rounds."""
    print("== Anchors: images/second (median), same alternating rounds ==")
    for name in anchors:
        print(f"  {name}: {notes.get(name, 'not run (NumPy backend only)')}")
    pairs = (("train", "minicnn-fit", "fit"), ("inference", "minicnn-predict", "predict"))
    for r in results:
        for mode, mine, label in pairs:
            for name in anchors:
                if name not in r[mode]:
                    continue
                a, b = r[mode][mine]["images_per_s"], r[mode][name]["images_per_s"]
                print(f"{r['batch_size']:>5}  {label:<8} {a:>9.0f}   {name:<12} {b:>9.0f}   minicnn/{name} {a / b:.2f}")
    print()
