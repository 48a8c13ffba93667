"""The ``gdasweep`` command line: ``run`` a study, print the ``theory`` of one configuration."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

import numpy as np

from .spec import load_study, with_execution, with_store
from .lock import StoreBusyError
from .store import StoreExistsError

logger = logging.getLogger("gdasweep")


def _chunk_size(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'invalid chunk size {text!r}: expected "auto" or an integer') from None


def _add_run_parser(commands) -> None:
    run = commands.add_parser("run", help="run a study file and write its Zarr store")
    run.add_argument("study", help="study file (TOML)")
    run.add_argument("--scheduler", metavar="ADDRESS",
                     help="address of an existing Dask scheduler (default: start a local cluster)")
    run.add_argument("--workers", type=int, help="local worker processes (overrides [execution] workers)")
    run.add_argument("--threads-per-worker", type=int, help="threads per local worker process")
    run.add_argument("--chunk-size", type=_chunk_size,
                     help='configurations per task and per Zarr chunk, or "auto" (aim at a few seconds per task)')
    run.add_argument("--store", help="output store path (overrides [output] store)")
    run.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    run.add_argument("--overwrite", action="store_true",
                     help="replace an existing store that a different study made (default: refuse)")


def _add_verify_parser(commands) -> None:
    verify = commands.add_parser(
        "verify", help="read every chunk of a store and check it against the completion marks",
        description="Read every chunk of a store, report chunks that are missing, partly written or "
                    "cannot be decoded, and remove the completion marks of damaged blocks so that the "
                    "next run computes them again. Exits with status 1 if any block is not complete.",
    )
    verify.add_argument("store", help="the store (a directory)")
    verify.add_argument("--no-repair", action="store_true", help="report only; keep every completion mark")


def _add_theory_parser(commands) -> None:
    theory = commands.add_parser(
        "theory", help="print the linearized theory for one configuration",
        description="Print the linearized theory of GDA for one true point with weight P and "
                    "generated points of weights P_GEN, all near the true point.",
    )
    theory.add_argument("--eta-d", type=float, required=True, help="discriminator learning rate (> 0)")
    theory.add_argument("--eta-g", type=float, required=True, help="generator learning rate (> 0)")
    theory.add_argument("--lam", type=float, help="discriminator regularization (>= 0); not with --recommend")
    theory.add_argument("--sigma", type=float, nargs="+",
                        help="Gaussian kernel bandwidth (> 0); with --recommend, MIN MAX of a range")
    theory.add_argument("--recommend", action="store_true",
                        help="find the lam that minimizes rho_generator for each bandwidth of a range")
    theory.add_argument("--sigma-count", type=int, default=25,
                        help="bandwidths, log-spaced over the range, with --recommend (default 25)")
    theory.add_argument("--p", type=float, default=1.0, help="weight of the true point (default 1)")
    theory.add_argument("--p-gen", type=float, nargs="+", default=[1.0],
                        help="weights of the generated points (default: one point of weight 1)")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gdasweep",
        description="Parameter studies of gradient descent-ascent in kernel GANs: "
                    "exact simulation beside the linearized theory.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (repeat for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="log only warnings and errors")
    parser.add_argument("--log-file", help="also write the log, at debug level, to this file")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_run_parser(commands)
    _add_verify_parser(commands)
    status = commands.add_parser("status", help="show a store's progress, phases so far and provenance")
    status.add_argument("store", help="the store (a directory)")
    report = commands.add_parser(
        "report", help="write phase maps, rate maps, trajectories and a Markdown summary of a store",
        description="Write PNG figures over two grid axes and summary.md. Grid axes that are not plotted "
                    "are fixed with --where, or at their first value.",
    )
    report.add_argument("store", help="the store (a directory)")
    report.add_argument("--x", default="sigma", help="grid axis along x (default sigma)")
    report.add_argument("--y", default="lam", help="grid axis along y (default lam)")
    report.add_argument("--where", nargs="*", metavar="AXIS=VALUE", help="fix another grid axis at a value")
    report.add_argument("--out", help="output directory (default STORE_report)")
    _add_theory_parser(commands)
    return parser


def _configure_logging(verbose: int, quiet: bool, log_file: str | None) -> None:
    if quiet:
        level = logging.WARNING
    elif verbose == 0:
        level = logging.INFO
    else:
        level = logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(level)
    package_logger = logging.getLogger("gdasweep")
    package_logger.addHandler(handler)
    package_logger.setLevel(logging.DEBUG if log_file else level)
    if log_file:
        file_handler = logging.FileHandler(log_file)
        file_handler.setFormatter(handler.formatter)
        package_logger.addHandler(file_handler)


def _run(args) -> int:
    from .run import run_study

    study = load_study(args.study)
    study = with_execution(
        study, workers=args.workers, threads_per_worker=args.threads_per_worker,
        chunk_size=args.chunk_size, scheduler=args.scheduler,
    )
    if args.store is not None:
        study = with_store(study, args.store)
    start = time.perf_counter()
    summary = run_study(study, progress=False if args.no_progress else None, overwrite=args.overwrite)
    elapsed = time.perf_counter() - start
    if summary.tasks:
        print(f"wrote {study.store} in {elapsed:.1f} s: {summary.tasks} tasks, kernel time summed over tasks "
              f"{summary.kernel_seconds:.1f} s")
    else:
        print(f"{study.store} is complete: nothing to compute")
    print(summary.format())
    return 0


def _verify(args) -> int:
    from .lock import StoreLock
    from .verify import verify_store

    with StoreLock(args.store):
        report = verify_store(args.store, repair=not args.no_repair)
    print(f"{args.store}: {report.format()}")
    return 0 if report.ok else 1


def format_theory(out: dict, index: int = 0) -> str:
    """Return the theory of configuration ``index`` as lines of text."""
    from .schema import PREDICTED_PHASES

    def value(name):
        return float(out[name][index])

    phase = PREDICTED_PHASES[int(out["predicted_phase"][index])]
    if phase == "no_fixed_point":
        return ("predicted phase:            no_fixed_point (lam = 0 with a mass mismatch: "
                "the discriminator's curvature grows without bound)\n"
                f"discriminator eigenvalue:   {value('discriminator_eigenvalue'):.12g}")
    imag = value("dominant_imag")
    dominant = f"{value('dominant_real'):.12g}" + (f" +/- {imag:.12g}i" if imag else "")
    return "\n".join([
        f"predicted phase:            {phase}",
        f"rho_generator:              {value('rho_generator'):.12g}",
        f"dominant eigenvalue:        {dominant}",
        f"discriminator eigenvalue:   {value('discriminator_eigenvalue'):.12g}",
        f"rho_total:                  {value('rho_total'):.12g}",
        f"curvature fixed point c*:   {value('curvature_fixed_point'):.12g}",
        f"continuous-time rho:        {value('rho_continuous'):.12g}",
        f"continuous-time lam*:       {value('lam_opt_continuous'):.12g}",
    ])


def _theory(args) -> int:
    from .compute import predict

    if args.recommend:
        return _recommend(args)
    if args.lam is None or args.sigma is None or len(args.sigma) != 1:
        raise ValueError("theory needs --lam and one --sigma value (or --recommend with --sigma MIN MAX)")
    out = predict([args.p], np.array(args.p_gen), args.eta_d, args.eta_g, args.lam, args.sigma[0])
    print(format_theory(out))
    return 0


def _recommend(args) -> int:
    from .recommend import optimal_lam
    from .schema import PREDICTED_PHASES

    if args.lam is not None:
        raise ValueError("--recommend chooses lam itself: drop --lam")
    if args.sigma is None or len(args.sigma) != 2 or not 0 < args.sigma[0] <= args.sigma[1]:
        raise ValueError(f"--recommend needs --sigma MIN MAX with 0 < MIN <= MAX, got {args.sigma}")
    if args.sigma_count < 1:
        raise ValueError(f"invalid --sigma-count {args.sigma_count}: must be >= 1")
    sigmas = np.geomspace(args.sigma[0], args.sigma[1], args.sigma_count)
    out = optimal_lam([args.p], np.array(args.p_gen), args.eta_d, args.eta_g, sigmas)

    print(f"{'sigma':>12} {'lam_opt':>14} {'rho_generator':>15} {'rho_total':>12}  predicted phase")
    for i in range(sigmas.size):
        phase = PREDICTED_PHASES[int(out["predicted_phase"][i])]
        print(f"{out['sigma'][i]:12.6g} {out['lam_opt'][i]:14.8g} {out['rho_generator'][i]:15.10f} "
              f"{out['rho_total'][i]:12.8f}  {phase}")
    converging = out["sigma"][out["converges"]]
    if converging.size:
        best = int(np.argmin(np.where(out["converges"], out["rho_total"], np.inf)))
        print(f"predicted to converge for {converging.size} of {sigmas.size} bandwidths, "
              f"sigma from {converging.min():.6g} to {converging.max():.6g}; fastest at sigma = "
              f"{out['sigma'][best]:.6g} with lam = {out['lam_opt'][best]:.8g} (rho_total {out['rho_total'][best]:.10f})")
    else:
        print("no bandwidth in the range is predicted to converge")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose, args.quiet, args.log_file)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "verify":
            return _verify(args)
        if args.command == "report":
            from .report import make_report

            for path in make_report(args.store, x=args.x, y=args.y, where=args.where, out=args.out):
                print(path)
            return 0
        if args.command == "status":
            from .status import format_status

            print(format_status(args.store))
            return 0
        return _theory(args)
    except ValueError as exc:  # StudyError, StoreMismatchError and invalid parameters
        print(f"gdasweep: error: {exc}", file=sys.stderr)
        return 2
    except (StoreBusyError, StoreExistsError) as exc:
        print(f"gdasweep: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader of standard output went away (``| head``); Python's own
        # flush at exit would fail again, so standard output goes to /dev/null.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:  # no permission, disk full, a file where a directory belongs
        print(f"gdasweep: error: storage failed: {exc}", file=sys.stderr)
        return 1

if __name__ == "__main__":
    sys.exit(main())
