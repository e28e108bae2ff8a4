"""lhp_core.deprecation: warnings for changed defaults and renamed functions, silent when passed explicitly."""
import copy
import pickle
import warnings

import pytest

from lhp_core.deprecation import DEFAULT, ChangedDefaultWarning, RenamedWarning, changed_default, renamed


def _f(x=DEFAULT):
    return changed_default("mod.f", "x", x, new=4, old=3, since="0.2.0", keep="x=3")


def test_changed_default_warns_only_when_relied_on():
    with pytest.warns(ChangedDefaultWarning) as rec:
        assert _f() == 4
    msg = str(rec[0].message)
    assert msg == ("mod.f: the default x=4 replaced x=3 in 0.2.0, so results differ from earlier releases; "
                   "pass x=3 for the old behaviour, or x=4 to silence this warning")
    assert rec[0].filename == __file__  # points at the caller of the caller, where the fix goes
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _f(4) == 4 and _f(3) == 3 and _f(None) is None


def test_default_survives_copy_and_pickle():
    assert copy.deepcopy(DEFAULT) is DEFAULT and pickle.loads(pickle.dumps(DEFAULT)) is DEFAULT
    assert repr(DEFAULT) == "DEFAULT"


def test_renamed_calls_the_new_function_and_names_it():
    def new_name(a, b=1):
        """Doc."""
        return a + b

    old = renamed("mod.old_name", new_name, "0.2.0")
    with pytest.warns(RenamedWarning, match=r"mod\.old_name was renamed .*new_name in 0\.2\.0 .*; call ") as rec:
        assert old(1, b=2) == 3
    assert rec[0].filename == __file__
    assert "Deprecated alias" in old.__doc__ and "Doc." in old.__doc__
