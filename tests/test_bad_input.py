"""A catalogue of bad input to the core Learner: each case asserts the error type and a message that says what to
do. (The domain packages test their own bad input next to their features: tests/test_vision_data.py,
test_text_data.py, test_tabular.py, test_collab.py.)"""
import numpy as np
import pytest
from torch import nn

from fastlib.basic_train import Learner
from fastlib.testing import fake_data, fake_learner


def _learner(**kwargs):
    return Learner(fake_data(), nn.Linear(8, 3), **kwargs)


CASES = [
    ('model not a module', lambda: Learner(fake_data(), lambda x: x), TypeError,
     r'Learner needs a torch nn.Module as model, not function'),
    ('loss_func given by name', lambda: _learner(loss_func='mse'), TypeError,
     r"loss_func must be callable \(e.g\. .*CrossEntropyFlat\(\).*not the str 'mse'"),
    ('opt_func given by name', lambda: _learner(opt_func='adam'), TypeError,
     r"opt_func must be callable \(e.g\. opt_func=AdamW or torch.optim.SGD.*not the str 'adam'"),
    ('metric neither function nor name', lambda: _learner(metrics=[3]), TypeError,
     r"A metric is a function f\(output, target\), a metric callback or a name such as 'accuracy', not the int 3"),
    ('negative epochs', lambda: fake_learner().fit(-1), ValueError, r'epochs must be a whole number >= 0, not -1'),
    ('fractional epochs', lambda: fake_learner().fit(1.5), ValueError, r'epochs must be a whole number >= 0, not 1.5'),
    ('NaN learning rate', lambda: fake_learner().fit(1, float('nan')), ValueError,
     r'The learning rate must be finite and >= 0, not \[nan'),
    ('negative learning rate', lambda: fake_learner().fit(1, -1e-3), ValueError,
     r'The learning rate must be finite and >= 0'),
    ('infinite learning rate in a slice', lambda: fake_learner().fit(1, [1e-3, np.inf]), ValueError,
     r'The learning rate must be finite and >= 0, not \[0.001, inf\]'),
    ('freeze_to past the last group', lambda: fake_learner().freeze_to(5), ValueError,
     r'freeze_to\(5\) would freeze every layer group: this learner has \d+ \(valid: -\d+ to \d+'),
    ('model without a saved file', lambda: fake_learner().load('never_saved'), FileNotFoundError,
     r'No saved model at .*never_saved.pth.*learn.save\(name\)'),
    ('model output and classes differ', lambda: Learner(fake_data(n_classes=3), nn.Linear(8, 10)).fit(1),
     ValueError, r'outputs 10 values per item but the data has 3 classes'),
    ('raw item to a learner of plain tensors', lambda: fake_learner().predict('hello'), TypeError,
     r"plain datasets, so predict takes the model's input for one sample .* not a str"),
    ('metric name typo', lambda: _learner(metrics=['acuracy']), ValueError,
     r"Unknown metric 'acuracy'. Did you mean 'accuracy'"),
]


@pytest.mark.parametrize('make, error, message', [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gives_a_clear_error(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_fit_zero_epochs_is_a_no_op():
    learn = fake_learner()
    before = [p.detach().clone() for p in learn.model.parameters()]
    learn.fit(0)
    assert all((a == b).all() for a, b in zip(before, learn.model.parameters()))


def test_a_loss_that_becomes_nan_is_reported_once_with_what_to_do():
    class NanAfter(nn.Module):
        "Mean squared error, NaN from the 3rd call on."
        def __init__(self):
            super().__init__()
            self.calls = 0

        def forward(self, out, y):
            self.calls += 1
            loss = ((out - out.detach()) ** 2).mean() + out.new_tensor(float(y.float().mean()))
            return loss * float('nan') if self.calls >= 3 else loss
    learn = fake_learner()
    learn.loss_func = NanAfter()
    with pytest.warns(UserWarning, match=r'The training loss became nan \(first at iteration 2 of this fit\).*'
                                         r'Lower the learning rate.*TerminateOnNaN') as rec:
        learn.fit(2, 1e-3)
    assert sum('training loss became' in str(w.message) for w in rec) == 1   # once, not at every epoch
