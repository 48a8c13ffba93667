import itertools
import warnings

import numpy as np
import pytest
import xarray as xr

import gdasweep
from gdasweep.sweeps import schema

AGREES = {0: 0, 1: 1, 2: 2, 3: 3, 4: 3}  # observed code -> predicted code it agrees with


@pytest.fixture(scope="module")
def synthetic():
    rng = np.random.default_rng(3)
    coords = {"eta_d": [1.0, 0.1, 0.01], "eta_g": [0.1, 0.01], "lam": [1.0, 0.1, 0.01, 0.0],
              "sigma": [0.1, 1.0, 10.0]}
    shape = tuple(len(v) for v in coords.values())
    observed = rng.integers(-1, 6, size=shape).astype(np.int8)
    predicted = rng.integers(0, 5, size=shape).astype(np.int8)
    dims = tuple(coords)
    return xr.Dataset({"observed_phase": (dims, observed), "predicted_phase": (dims, predicted)}, coords=coords)


def test_sel_ratio_matches_pairs(synthetic):
    selected = synthetic.gda.sel_ratio(0.1)
    expected = {(d, g) for d, g in itertools.product(synthetic.eta_d.values, synthetic.eta_g.values)
                if abs(g / d - 0.1) <= 1e-9 * 0.1}
    assert set(zip(selected.eta_d.values.tolist(), selected.eta_g.values.tolist())) == expected
    assert expected == {(1.0, 0.1), (0.1, 0.01)}
    for i, (d, g) in enumerate(zip(selected.eta_d.values, selected.eta_g.values)):
        np.testing.assert_array_equal(selected.observed_phase.isel(pair=i).values,
                                      synthetic.observed_phase.sel(eta_d=d, eta_g=g).values)


def test_sel_ratio_missing_lists_ratios(synthetic):
    with pytest.raises(KeyError, match=r"eta_g / eta_d = 3\.0; ratios in the grid"):
        synthetic.gda.sel_ratio(3.0)


def test_disagreements_match_loop(synthetic):
    expected = set()
    comparable = 0
    for index in itertools.product(*(range(n) for n in synthetic.observed_phase.shape)):
        observed = int(synthetic.observed_phase.values[index])
        predicted = int(synthetic.predicted_phase.values[index])
        if observed not in AGREES or predicted == 4:
            continue
        comparable += 1
        if AGREES[observed] != predicted:
            expected.add(tuple(float(synthetic[dim].values[i]) for dim, i in zip(schema.GRID_DIMS, index)))

    found = synthetic.gda.disagreements()
    got = {tuple(float(found[dim].values[i]) for dim in schema.GRID_DIMS) for i in range(found.sizes["config"])}
    assert got == expected
    assert int(np.isfinite(synthetic.gda.agreement.values).sum()) == comparable


def test_boundary_follows_level_set():
    sigma = np.geomspace(0.1, 10.0, 40)
    lam = np.geomspace(0.01, 10.0, 30)
    rho = np.multiply.outer(lam, sigma)  # rho = lam * sigma equals 1 on a hyperbola
    ds = xr.Dataset({"rho_generator": (("lam", "sigma"), rho)}, coords={"lam": lam, "sigma": sigma})

    lines = ds.gda.boundary(x="sigma", y="lam")

    assert len(lines) == 1
    points = lines[0]
    assert points.shape[0] > 20
    # Vertices lie on grid edges, where lam * sigma is linear in the other coordinate.
    np.testing.assert_allclose(points[:, 0] * points[:, 1], 1.0, rtol=1e-12)


def test_boundary_needs_a_plane(synthetic):
    ds = synthetic.assign(rho_generator=synthetic.observed_phase.astype(float))
    with pytest.raises(ValueError, match="select them first"):
        ds.gda.boundary()


def test_open_study_is_lazy(tmp_path):
    coords = {"eta_d": [0.1], "eta_g": [0.1], "lam": [0.1, 1.0], "sigma": [1.0]}
    ds = xr.Dataset({"observed_phase": (tuple(coords), np.zeros((1, 1, 2, 1), dtype=np.int8))}, coords=coords)
    with warnings.catch_warnings():
        # gdasweep's own stores are consolidated the same way.
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        ds.to_zarr(tmp_path / "s.zarr", zarr_format=3, consolidated=True)
    opened = gdasweep.open_study(tmp_path / "s.zarr")
    assert opened.observed_phase.chunks is not None
    assert float(opened.gda.ratio.values[0, 0]) == 1.0
