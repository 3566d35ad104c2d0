"""The held-out split of ``make train-mri2audio QUICK=1``, for the scripts beside this file (one source for all)."""

from datamodules.mri2audio import Crops, MRI2AudioDataModule, SubjectSplit


def quick_datamodule(*stages: str, pitch: bool = False) -> MRI2AudioDataModule:
    """The QUICK preset's data (160 phantom subjects, fold 0 of 10: 16 test subjects x 4 crops, 64 x 64 frames), set
    up for ``stages``; ``pitch`` adds the F0 tracked from each recording's audio."""
    dm = MRI2AudioDataModule(phantom={"subjects": 160}, split=SubjectSplit(kind="kfold", k=10, val_subjects=4), fold=0,
                             crops=Crops(train=2, eval=4, mri_window="crop"), size=64, batch_size=16, num_workers=0,
                             pitch=pitch)
    dm.prepare_data()
    for stage in stages:
        dm.setup(stage)
    return dm
