"""Numbers with their uncertainty: the uncertainty decides the digits."""
from genbench.reports.numbers import cell_to_text, delta_to_text


def test_uncertainty_decides_the_digits():
    assert cell_to_text(12.3456, spread="ci", low=11.1234, high=13.9876) == "12.3 [11.1, 14.0]"
    assert cell_to_text(1.23456, spread="stderr", stderr=0.0123) == "1.235 ± 0.012"
    assert cell_to_text(1.23456, spread="stderr", stderr=0.0123, kind="upper_bound") == "≤ 1.235 ± 0.012"
    assert cell_to_text(0.5234, spread="seeds", sd=0.041, seeds=3) == "0.523 ± 0.041 (sd, 3 seeds)"
    assert cell_to_text(14078.2, spread="range", low=12669.0, high=14102.0) == "14\u2009078 [12\u2009669, 14\u2009102]"


def test_exact_missing_and_unknown_uncertainty():
    assert cell_to_text(64.0, spread="exact") == "64"
    assert cell_to_text(None) == "—" and cell_to_text(float("nan")) == "—"
    assert cell_to_text(3.14159) == "3.142†"  # no uncertainty recorded: four significant digits, marked
    assert delta_to_text(-2.04, 0.31) == "Δ -2.04 ± 0.31" and delta_to_text(1.5, None) == "Δ +1.500"


def test_identical_seeds_do_not_print_round_off():
    assert cell_to_text(1.9026, spread="seeds", sd=2.7e-16, seeds=3) == "1.903 ± 0 (sd, 3 seeds)"
    assert delta_to_text(-8.88e-16, None) == "Δ 0"
