"""The study spec: TOML → validated, typed configuration → the list of trials.

    study = load_study("studies/quickstart.toml", overrides=["train.epochs=2"])
    trials = expand(study)          # variants × grid × seeds, each with a stable trial_id
"""

from ablate.spec.config import Study, TrialConfig
from ablate.spec.expand import expand
from ablate.spec.ids import make_trial_id, trial_from_dict, trial_to_dict
from ablate.spec.parse import SpecError, load_study

__all__ = ["Study", "TrialConfig", "SpecError", "load_study", "expand", "make_trial_id",
           "trial_to_dict", "trial_from_dict"]
