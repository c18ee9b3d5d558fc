"""Log the epoch table to a CSV file as training goes."""
from __future__ import annotations

import csv
import time
from typing import TYPE_CHECKING, Any

from ..basic_train import Learner, LearnerCallback, format_time
from ..core import atomic_write
from ..torch_core import rank_distrib

if TYPE_CHECKING:
    import pandas as pd

__all__ = ['CSVLogger']


class CSVLogger(LearnerCallback):
    """Write the epoch table (the recorder's columns, formatted as printed) to `learn.path/{filename}.csv`.

    Each row is written and the file closed at the end of its epoch, so a crash keeps the rows of the epochs
    that finished. With `append`, rows go after those of an existing file (its header is not repeated).
    In distributed training only rank 0 writes (every rank has the same numbers).
    """

    def __init__(self, learn: Learner, filename: str = 'history', append: bool = False):
        super().__init__(learn)
        self.filename, self.append = filename, append
        self.path = self.learn.path / f'{filename}.csv'

    def read_logged_file(self) -> pd.DataFrame:
        "The logged table as a pandas DataFrame ('#na#' entries read as NaN)."
        import pandas as pd
        return pd.read_csv(self.path, na_values=['#na#'])

    def on_train_begin(self, **kwargs: Any) -> None:
        "Write the header, or with `append` check that the existing file has the same columns."
        self.names = list(self.learn.recorder.names)
        self.add_time = 'time' in self.names
        if rank_distrib() != 0:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.append and self.path.is_file() and self.path.stat().st_size > 0:
            with self.path.open(newline='') as f:
                old_names = next(csv.reader(f), [])
            if old_names != self.names:
                raise ValueError(f"CSVLogger: {self.path} has the columns {old_names}, but this run's are "
                                 f"{self.names}. Log to another file (filename=...) or pass append=False "
                                 "to overwrite it.")
            return
        with atomic_write(self.path, 'w') as f:   # csv's own line ends ('\r\n') pass through text mode as they are
            csv.writer(f).writerow(self.names)

    def checkpoint_state(self) -> dict:
        "The rows written so far: a resumed run starts its file from them (rows after the checkpoint are dropped)."
        if rank_distrib() != 0 or not self.path.is_file():
            return {}
        return {'rows': self.path.read_bytes()}

    def load_checkpoint_state(self, state: dict) -> None:
        if 'rows' in state and rank_distrib() == 0:
            with atomic_write(self.path, 'wb') as f:
                f.write(state['rows'])

    def on_epoch_begin(self, **kwargs: Any) -> None:
        if self.add_time:
            self.start_epoch = time.time()

    def on_epoch_end(self, epoch: int, smooth_loss: Any, last_metrics: list | None, **kwargs: Any) -> None:
        "Append this epoch's row (and close the file, so the row is on disk if training crashes later)."
        if rank_distrib() != 0:
            return
        n_stats = len(self.names) - int(self.add_time)
        stats = [epoch, smooth_loss] + list(last_metrics or [])
        stats += [None] * (n_stats - len(stats))  # validation skipped: '#na#' in its columns, as in the table
        row = [_format_stat(s) for s in stats[:n_stats]]
        if self.add_time:
            row.append(format_time(time.time() - self.start_epoch))
        with self.path.open('a', newline='') as f:
            csv.writer(f).writerow(row)


def _format_stat(stat: Any) -> str:
    "One cell formatted as the recorder prints it: '#na#' for missing, ints as they are, else 6 decimals."
    if stat is None:
        return '#na#'
    if isinstance(stat, int) and not isinstance(stat, bool):
        return str(stat)
    return f'{float(stat):.6f}'  # a tensor (the smoothed loss) is read on the host here, once per epoch
