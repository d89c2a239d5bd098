"""The ``ct3d`` command: parse flags, merge parameter sources, call ct3d's public functions.

Parameter sources merge in a fixed order: defaults < scenario file < ``--set key=value``.
Every :class:`~ct3d.errors.Ct3dError` is printed as ``ct3d: error: ...`` with exit status 2
and no traceback. A command is checked before it does any work: ``ct3d train bad.yaml``
answers without importing TensorFlow.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ct3d
from ct3d.data.severity import SEVERITIES
from ct3d.engine.devices import configure_from_env
from ct3d.errors import Ct3dError
from ct3d.fetch.mosmed import DEFAULT_BASE_URL
from ct3d.registry import REGISTRIES
from ct3d.scenario import PRESETS, Scenario, ScenarioError


def parse_sets(items: Sequence[str]) -> dict[str, str]:
    """``["train.epochs=3", "data.root=/x"]`` -> ``{"train.epochs": "3", "data.root": "/x"}``."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ScenarioError(f"--set needs key=value, got {item!r}")
        out[key.strip()] = value
    return out


def _plugin_entry(kind: str, name: str) -> dict[str, Any]:
    """What ``ct3d plugins`` shows of one plugin; a model's smallest input (its default
    parameters) besides."""
    entry = REGISTRIES[kind].describe(name).to_dict()
    if kind == "model":
        entry["min_input"] = ct3d.models.min_input(name)
    return entry


def _plugins(args: argparse.Namespace) -> None:
    kinds = [args.kind] if args.kind else list(REGISTRIES)
    listing = {k: [_plugin_entry(k, n) for n in REGISTRIES[k].names()] for k in kinds}
    errors = {k: REGISTRIES[k].load_errors for k in kinds if REGISTRIES[k].load_errors}
    if args.json:
        print(json.dumps({"plugins": listing, "load_errors": errors}, indent=2))
        return
    for kind, plugins in listing.items():
        print(f"{kind}:")
        for p in plugins:
            params = ", ".join(f"{q['name']}: {q['type']} = {q['default']!r}" for q in p["params"])
            print(f"  {p['name']}({params})\n      {p['summary']}  [{p['origin']}]")
            for q in p["params"]:
                print(f"        {q['name']}: {q['doc'] or '(undocumented)'}")
            if p.get("min_input"):
                print(f"        smallest input: {p['min_input']} voxels on every side "
                      f"(default parameters)")
        for name, message in errors.get(kind, {}).items():
            print(f"  ! {name}: failed to load: {message}")


def _synth(args: argparse.Namespace) -> None:
    from ct3d.data.synthetic import generate_cohort

    severity = None if args.severity == "none" else args.severity
    paths = generate_cohort(args.out, args.normal, args.abnormal, seed=args.seed,
                            preset=args.preset, difficulty=args.difficulty,
                            workers=args.workers, progress=True, severity=severity,
                            scanner=args.scanner)
    print(f"wrote {len(paths)} scans (with lesion masks) under {args.out}")
    if not paths:
        return
    with (Path(args.out) / "manifest.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    print(f"{'folder':<8}{'scans':>6}  lesion share of the lungs (min-max)")
    for folder in sorted({r["label"] for r in rows}):
        shares = [float(r["involvement"]) for r in rows if r["label"] == folder]
        print(f"{folder:<8}{len(shares):>6}  {min(shares):.1%}-{max(shares):.1%}")
    _print_lesion_stats({folder: [r for r in rows if r["label"] == folder]
                         for folder in sorted({r["label"] for r in rows}) if folder != "CT-0"})
    print(f"per-scan grade, involvement, geometry and lesion statistics: "
          f"{Path(args.out) / 'manifest.csv'}")


def _print_lesion_stats(groups: dict[str, list[dict[str, Any]]]) -> None:
    """Each group's lesion statistics as a table, beside the real CT-1 masks' for CT-1."""
    from ct3d.data.lesion_stats import MOSMED_CT1, format_summary, summarize

    for name, rows in groups.items():
        if rows:
            print(f"\nlesions of {name} ({len(rows)} scan{'' if len(rows) == 1 else 's'}):")
            print(format_summary(summarize(rows), name, MOSMED_CT1 if name == "CT-1" else None))


def _lesions(args: argparse.Namespace) -> None:
    from ct3d.data.lesion_stats import LESION_STATS, MOSMED_CT1_SOURCE, folder_lesion_stats

    rows = folder_lesion_stats(args.folder)
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(str(Path(str(row["path"])).parent), []).append(row)
    print(f"{len(rows)} lesion masks under {args.folder}")
    _print_lesion_stats(groups)
    print(f"\nreal CT-1 column: {MOSMED_CT1_SOURCE}")
    if args.csv:
        with Path(args.csv).open("w", newline="") as f:
            writer = csv.DictWriter(f, ["path", *LESION_STATS])
            writer.writeheader()
            writer.writerows(rows)
        print(f"per-scan statistics: {args.csv}")


def _scenario_new(args: argparse.Namespace) -> None:
    print(Scenario.preset(args.preset).to_yaml(comments=True), end="")


def _print_result(result: Any) -> None:
    from ct3d.report.text import format_table

    metrics = result.metrics
    print(format_table(metrics.get("parts") or {metrics["evaluated_on"]: metrics},
                       metrics["classes"]))
    print(f"run folder: {result.run_dir}")


def _train(args: argparse.Namespace) -> None:
    if args.resume:
        if args.scenario or args.set or args.out or args.force:
            raise ScenarioError("--resume RUN_DIR takes the run's own scenario and folder: "
                                "give no scenario file, --set, --out or --force")
        _print_result(ct3d.run(resume=args.resume))
        return
    if not args.scenario:
        raise ScenarioError("give a scenario file (or --resume RUN_DIR)")
    scenario = Scenario.from_file(args.scenario).with_overrides(parse_sets(args.set))
    _print_result(ct3d.run(scenario, out=args.out, force=args.force))


def _slices(top: list[tuple[int, float]]) -> str:
    """``31:0.210 30:0.180``: slice numbers of the original scan and attention weights."""
    return " ".join(f"{k}:{w:.3f}" for k, w in top)


def _predict(args: argparse.Namespace) -> int:
    import csv

    results = ct3d.predict(args.run_dir, args.scans, saliency_dir=args.saliency,
                           layer=args.layer)
    for r in results:
        if r.error:
            print(f"{r.scan}\tERROR\t{r.error}", file=sys.stderr)
        else:
            print(f"{r.scan}\t{r.probability:.4f}\t{r.label}"
                  + (f"\t{r.saliency}\t{r.saliency_layer or 'empty'}" if r.saliency else "")
                  + (f"\tslices {_slices(r.top_slices)}" if r.top_slices else ""))
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["scan", "probability", "label", "saliency", "saliency_layer",
                        "saliency_note", "top_slices", "error"])
            w.writerows([r.scan, "" if r.probability is None else f"{r.probability:.6f}",
                         r.label or "", r.saliency or "", r.saliency_layer or "",
                         r.saliency_note or "", _slices(r.top_slices), r.error or ""]
                        for r in results)
    if not results:
        raise ScenarioError(f"no scans found in {', '.join(args.scans)}")
    return 1 if any(r.error for r in results) else 0


def _export(args: argparse.Namespace) -> None:
    from ct3d.export import export_run

    path = export_run(args.run_dir, args.format, args.out)
    print(f"exported: {path}\nwith {Path(args.out) / 'ct3d-model.json'} (how to feed it) and "
          f"{Path(args.out) / 'MODEL_CARD.md'}")


def _preprocess(args: argparse.Namespace) -> None:
    sets = parse_sets(args.set)
    if args.strict:
        sets["data.strict"] = "true"
    if args.workers is not None:
        sets["data.workers"] = str(args.workers)
    ct3d.preprocess_cache(Scenario.from_file(args.scenario).with_overrides(sets))


def _pretrain(args: argparse.Namespace) -> None:
    from ct3d.pretrain import pretrain

    scenario = Scenario.from_file(args.scenario).with_overrides(parse_sets(args.set))
    result = pretrain(scenario, args.unlabeled, args.out)
    print(f"pretrained encoder: {result}\nstart a 3D model from it with "
          f"--set model.params.weights={result}")


def _demo(args: argparse.Namespace) -> None:
    out = Path(args.out)
    overrides = {"name": "demo", "out": str(out / "run"), "data.root": str(out / "data"),
                 "data.cache": str(out / "cache")}
    if args.epochs is not None:
        overrides["train.epochs"] = args.epochs
    scenario = Scenario.preset("quick").with_overrides(overrides)
    print(f"ct3d demo: synthetic cohort in {out / 'data'}, modified 3D CNN, "
          f"{scenario.train.epochs} epochs")
    _print_result(ct3d.run(scenario, force=True))


def _report(args: argparse.Namespace) -> int:
    from ct3d import report

    data = None if args.data == "synthetic" else args.data
    summary = report.run_grid(args.grid, data=data, quick=args.quick, out=args.out,
                              kernel=args.kernel, only=args.only or None, work=args.work)
    return 0 if summary.ok else 1


def _compare(args: argparse.Namespace) -> None:
    from ct3d.paired import compare_runs
    from ct3d.report.text import format_comparison

    comparison = compare_runs(args.run_a, args.run_b, n_boot=args.n_boot, seed=args.seed)
    print(format_comparison(comparison))
    if args.out:
        Path(args.out).write_text(json.dumps(comparison, indent=2) + "\n")
        print(f"written: {args.out}")


def _fetch_mosmed(args: argparse.Namespace) -> None:
    from ct3d.fetch import fetch_mosmed, inspect_mosmed

    subsets = [s.strip() for s in args.subsets.split(",") if s.strip()] if args.subsets else None
    source = Path(args.source).resolve() if args.source else None
    root = fetch_mosmed(Path(args.dest).resolve(), subsets, args.base_url, source)
    print(inspect_mosmed(root).summary())


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``ct3d`` command."""
    parser = argparse.ArgumentParser(prog="ct3d", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"ct3d {ct3d.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("plugins", help="list registered plugins with their parameters")
    p.add_argument("kind", nargs="?", choices=list(REGISTRIES))
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_plugins)

    p = sub.add_parser("synth", help="generate a synthetic chest-CT cohort (NIfTI + masks)")
    p.add_argument("out", help="output folder (gets CT-0/ and a folder per abnormal grade)")
    p.add_argument("--normal", type=int, default=20, help="normal (CT-0) scans (default 20)")
    p.add_argument("--abnormal", type=int, default=20,
                   help="abnormal scans (default 20); with --severity all, per grade")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", default="mosmed", choices=["mosmed", "quick"])
    p.add_argument("--severity", default="CT-23", choices=["none", *SEVERITIES],
                   help="MosMedData grade of the abnormal scans (default CT-23: CT-2 and CT-3, "
                        "25-75%% of the lungs); 'all' writes CT-0/ to CT-4/; 'none' uses "
                        "--difficulty")
    p.add_argument("--scanner", default="varied", choices=["varied", "uniform"],
                   help="varied (default): slice thickness, noise, kernel, patient size, "
                        "inspiration and field of view vary per scan; uniform: fixed")
    p.add_argument("--difficulty", default="moderate", choices=["easy", "moderate", "hard"],
                   help="lesion settings with --severity none")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.set_defaults(func=_synth)

    p = sub.add_parser("lesions", help="per-scan lesion statistics of a folder of *_mask files "
                                       "(volume, components, largest, slice share)")
    p.add_argument("folder", help="a folder holding *_mask scans (searched recursively), "
                                  "e.g. a synthetic cohort or MosMedData's masks/")
    p.add_argument("--csv", metavar="PATH", help="also write the per-scan statistics here")
    p.set_defaults(func=_lesions)

    p = sub.add_parser("scenario", help="scenario files")
    scen = p.add_subparsers(dest="action", required=True)
    q = scen.add_parser("new", help="print a complete scenario YAML with every default")
    q.add_argument("--preset", default="quick", choices=sorted(PRESETS))
    q.set_defaults(func=_scenario_new)

    p = sub.add_parser("train", help="train and evaluate a scenario into a run folder")
    p.add_argument("scenario", nargs="?", help="scenario .yaml/.json")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a dotted key, e.g. train.epochs=3 (repeatable)")
    p.add_argument("--out", help="run folder (default: the scenario's `out`)")
    p.add_argument("--force", action="store_true",
                   help="replace a run already in the run folder (refused otherwise)")
    p.set_defaults(func=_train)

    p = sub.add_parser("predict", help="apply a trained run to scans (files or folders)")
    p.add_argument("run_dir", help="a run folder written by `ct3d train`")
    p.add_argument("scans", nargs="+",
                   help="scans: NIfTI, NRRD or MetaImage files, or DICOM series folders (a "
                        "folder directly holding one series' files), or folders of them "
                        "(searched recursively)")
    p.add_argument("--saliency", metavar="OUT_DIR",
                   help="also write a Grad-CAM NIfTI map per scan here, at the scan's path "
                        "below the deepest folder holding all the scans, with _gradcam.nii.gz "
                        "for the NIfTI suffix (scans x/a/dicom and x/b/dicom: "
                        "OUT_DIR/a/dicom_gradcam.nii.gz, OUT_DIR/b/dicom_gradcam.nii.gz); "
                        "a layer whose map is empty is skipped for a shallower one, and the "
                        "layer used is printed after the map ('empty': none gave a map)")
    p.add_argument("--layer", metavar="NAME",
                   help="the convolution layer Grad-CAM explains (default: the model's last; "
                        "for slice models a 2D convolution of the backbone)")
    p.add_argument("--csv", metavar="OUT.csv",
                   help="also write the results as CSV (scan, probability, label, saliency, "
                        "saliency_layer, saliency_note: why layers were skipped, top_slices: "
                        "for slice models with attention, the 3 heaviest slices as "
                        "slice:weight, error)")
    p.set_defaults(func=_predict)

    p = sub.add_parser("export", help="write a run's model for others to load (Keras, "
                                      "SavedModel, ONNX) with its preprocessing as JSON")
    p.add_argument("run_dir", help="a run folder written by `ct3d train`")
    p.add_argument("--format", default="keras", choices=["keras", "savedmodel", "onnx"],
                   help="keras: model.keras; savedmodel: a TensorFlow SavedModel folder; "
                        "onnx: model.onnx (pip install \"ct3d[export]\"); default keras")
    p.add_argument("--out", default="exported", help="folder to write into (default exported)")
    p.set_defaults(func=_export)

    p = sub.add_parser("preprocess", help="fill the preprocessed-scan cache ahead of training")
    p.add_argument("scenario", help="scenario .yaml/.json")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a dotted key (repeatable)")
    p.add_argument("--strict", action="store_true", help="any scan that fails is fatal")
    p.add_argument("--workers", type=int, help="processes (default: data.workers)")
    p.set_defaults(func=_preprocess)

    p = sub.add_parser("pretrain", help="self-supervised pretraining of a scenario's 3D model "
                                        "on unlabeled scans (Models Genesis restoration)")
    p.add_argument("scenario", help="scenario .yaml/.json: its preprocessing, cache, model, "
                                    "seed and train.epochs / batch_size / learning_rate")
    p.add_argument("--unlabeled", required=True, metavar="DIR_OR_MANIFEST",
                   help="a folder of scans (searched recursively) or a manifest .csv with a "
                        "path column")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="folder for pretrained.keras, history.csv, loss.png, pretrain.json "
                        "(an interrupted run resumes there)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a dotted key, e.g. train.epochs=50 (repeatable)")
    p.set_defaults(func=_pretrain)

    p = sub.add_parser("demo", help="synthetic cohort -> modified 3D CNN -> metrics")
    p.add_argument("--out", default="ct3d-demo", help="folder for data and run")
    p.add_argument("--epochs", type=int, help="training epochs (default: the quick preset's)")
    p.set_defaults(func=_demo)

    p = sub.add_parser("report", help="papermill reports of a scenario grid, with an index")
    p.add_argument("--grid", default="thesis", help="grid name (default thesis)")
    p.add_argument("--data", default="synthetic",
                   help="'synthetic' (default) or a folder of class sub-folders (CT-0/, CT-23/)")
    p.add_argument("--quick", action="store_true", help="tiny data, input and epochs")
    p.add_argument("--out", default="reports/thesis",
                   help="report folder (default reports/thesis)")
    p.add_argument("--work", metavar="DIR",
                   help="folder for the synthetic cohort, the cache and the run folders with "
                        "the models (.data, .cache, .runs; default: the report folder's "
                        "parent); printed at the start")
    p.add_argument("--kernel", help="Jupyter kernel name (default: this Python)")
    p.add_argument("--only", action="append", metavar="SCENARIO",
                   help="run only this scenario (repeatable)")
    p.set_defaults(func=_report)

    p = sub.add_parser("compare", help="paired comparison of two runs on the same scans: AUC "
                                       "and accuracy of B minus A, 95%% CI, p-value")
    p.add_argument("run_a", metavar="RUN_A", help="run folder A (the reference)")
    p.add_argument("run_b", metavar="RUN_B",
                   help="run folder B, tested on the same scans in the same split as A")
    p.add_argument("--out", metavar="FILE.json",
                   help="also write the comparison as JSON (default: print only)")
    p.add_argument("--n-boot", type=int, default=2000,
                   help="bootstrap resamples of the scans (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the resamples (default 0)")
    p.set_defaults(func=_compare)

    p = sub.add_parser("fetch", help="download a public dataset, or check a local copy")
    datasets = p.add_subparsers(dest="dataset", required=True)
    q = datasets.add_parser("mosmed", help="MosMedData chest CT (CC BY-NC-ND 3.0)")
    q.add_argument("--subsets", metavar="CT-0,CT-23",
                   help="comma-separated subsets (default CT-0,CT-23; CT-1, CT-2 also "
                        "published; with --from: every CT-*.zip there)")
    q.add_argument("--dest", default="data/mosmed",
                   help="folder for the zips, the class folders and the lock file "
                        "(default data/mosmed)")
    q.add_argument("--base-url", default=DEFAULT_BASE_URL,
                   help="where <subset>.zip are (default: the Keras example's release)")
    q.add_argument("--from", dest="source", metavar="PATH",
                   help="no download: a zip, a folder of CT-*.zip, or a folder already holding "
                        "CT-0/ ... (or studies/CT-0/ ...), checked in place")
    q.set_defaults(func=_fetch_mosmed)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ct3d`` console script."""
    args = build_parser().parse_args(argv)
    try:
        configure_from_env()
        return args.func(args) or 0
    except Ct3dError as exc:
        print(f"ct3d: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
