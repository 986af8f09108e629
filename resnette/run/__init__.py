"""A run: its settings (config), its folder and every file name in it (folder), building the
data and the Learner from a config (setup), and a trained model loaded back (trained).

Nothing is imported here, so that `resnette.run.folder`, a leaf, can be read by any layer.
"""
