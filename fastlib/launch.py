"""Start a training script on several processes: `python -m fastlib.launch --nproc_per_node N script.py [args]`.

Every option is torchrun's (`torch.distributed.run`), which starts the processes, sets RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR and MASTER_PORT for each, and ends them all when one fails. On one machine it picks a free
port itself; on several, give each machine the same `--nnodes`, `--rdzv_backend c10d --rdzv_endpoint HOST:PORT`
and `--rdzv_id`. fastlib adds one thing: each process runs the script through a wrapper that records an error in
torchrun's error file, so the summary torchrun prints names the rank that failed with its traceback.
"""
from __future__ import annotations

import runpy
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ['main', 'torchrun_args']

_WORKER_FLAG = '--fastlib-worker'


def torchrun_args(argv: Sequence[str]) -> list[str]:
    """torchrun's command line for fastlib.launch's `argv`: its own options, then each process runs the script
    (the first argument that is not an option, with the arguments after it) through this module's wrapper."""
    from torch.distributed.run import get_args_parser
    args = get_args_parser().parse_args(list(argv))
    if args.module or args.no_python:
        raise ValueError("fastlib.launch runs a script file: drop --module/-m and --no-python (use torchrun directly "
                         "for those).")
    script, script_args = args.training_script, list(args.training_script_args)
    opts = list(argv)[:len(argv) - len(script_args) - 1]   # torchrun's options, before the script
    return opts + ['--module', 'fastlib.launch', _WORKER_FLAG, script] + script_args


def _run_worker(script: str, args: list[str]) -> None:
    "Run `script` as `__main__` with `args`, recording an error for torchrun's summary."
    from torch.distributed.elastic.multiprocessing.errors import record

    @record
    def run() -> None:
        sys.argv = [script] + args
        sys.path.insert(0, str(Path(script).resolve().parent))  # as `python script.py` does
        runpy.run_path(script, run_name='__main__')

    run()


def main(argv: Sequence[str] | None = None) -> None:
    "Launch `argv` (default the command line) with torchrun."
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == _WORKER_FLAG:
        _run_worker(argv[1], argv[2:])
        return
    if not argv or argv[0] in ('-h', '--help'):
        print(__doc__.strip() + '\n')
    from torch.distributed.run import main as torchrun_main
    torchrun_main(torchrun_args(argv) if argv and argv[0] not in ('-h', '--help') else argv)


if __name__ == '__main__':
    main()
