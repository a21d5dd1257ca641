"""Image data for driftscope's models, torch-free so streaming workers can import it.

- ``synthetic``: a fluorescence-nuclei generator with ground-truth instance masks;
- ``drift``: named, composable drift transforms and drift schedules for the synthetic instrument;
- ``dsb``: fixed train/val/test tiles of the real 2018 Data Science Bowl image;
- ``dataset``: import and export of image/mask folders (TIFF, OME-TIFF, PNG).
"""
