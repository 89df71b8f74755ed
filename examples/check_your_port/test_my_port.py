"""How a project tests its sampler with flowlab's pytest plugin (installed with flowlab: no conftest needed)."""
from my_port import pred_data, sample, sample_as_released


def test_sampler_matches_the_exact_flow(check_sampler):
    check_sampler(sample, "reversed", signature="hunyuan", steps=50)


def test_released_schedule_wastes_one_call(check_sampler):
    report = check_sampler(sample_as_released, "reversed", signature="hunyuan", allow=["wasted_last_step"])
    assert report.facts["effective_steps"] == 49


def test_data_prediction(check_prediction):
    check_prediction(pred_data, "reversed", "data")
