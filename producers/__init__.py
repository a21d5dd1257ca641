"""The instrument side: everything that puts images on ``images.raw`` (and masks on ``labels``).

- ``kafka``: the idempotent producer that accounts for every delivery report;
- ``files``: which files are images, and how a file becomes image planes;
- ``publish``: image files to ImageEvents (claim-checked when large) on a producer;
- ``watcher``: an instrument's output folder, each finished file published once;
- ``instrument``: the synthetic instrument with a drift schedule and late labels;
- ``replay``: a slice of a topic, by time or offset, copied again.
"""
