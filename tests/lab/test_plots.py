from PIL import Image

import descend.schedules as S
from descend.lab.plots import plot_schedules


def test_plot_schedules_draws_png(tmp_path):
    path = plot_schedules({"cosine": S.cosine(1.0, 100), "recorded": [0.5] * 100}, 100,
                          tmp_path / "s.png")
    with Image.open(path) as im:
        histogram = im.convert("L").histogram()
        assert im.size[0] > 500 and sum(1 for count in histogram if count) > 10
    grid = plot_schedules({f"s{i}": S.linear(0, i, 10) for i in range(5)}, 10,
                          tmp_path / "g.png", ncols=3)
    assert grid.stat().st_size > 10_000
