"""The examples that end each command's `--help` (resnette/cli.py builds the parser): a
working line or three per command, kept apart so the parser stays readable."""

EXAMPLES = {
    "train": """examples:
  resnette train --data digits                       # about 9 s on an idle 2-core CPU
  resnette train --data imagenette-160 --arch xresnet18 --size 128 --epochs 5 --lr 3e-3
  resnette train --data ~/my-photos --init-from runs/imagenette-160-xresnet18-128px --epochs 3
  resnette train --config run.toml --epochs 10       # flags override the file
  resnette train --name my-run --resume              # continue an interrupted run""",
    "lr-find": """examples:
  resnette lr-find --data digits                          # -> lr_find-digits-simple_cnn-32px.png
  resnette lr-find --data imagenette-160 --arch xresnet18 --size 128 --out lr.png
  resnette lr-find --name my-run                          # an existing run: its config, plots/""",
    "evaluate": """examples:
  resnette evaluate runs/digits-xresnet18-32px
  resnette evaluate runs/digits-xresnet18-32px --tta
  resnette evaluate runs/my-run --folder ~/more-photos   # <folder>/<label>/*.jpg""",
    "predict": """examples:
  resnette predict runs/digits-simple_cnn-32px --sample     # validation digits to try
  resnette predict runs/my-run/model.safetensors photos/ --top 3 --json
  resnette predict export/model.safetensors photo.jpg --tta""",
    "export": """examples:
  resnette export runs/digits-xresnet18-32px --format onnx          # -> runs/.../model.onnx
  resnette export runs/digits-xresnet18-32px --format safetensors --out exported/
  resnette export runs/imagenette-160-xresnet18-128px --format timm    # timm's resnet18d names
  resnette export runs/imagenette-160-xresnet18-128px --format fastai --out xresnet18.pth""",
    "summary": """examples:
  resnette summary xresnet50 --size 224
  resnette summary --arch xresnet18 --size 128     # spelled as for train
  resnette summary --list""",
    "reproduce": """examples:
  resnette reproduce chapter14 --quick                 # every experiment, tiny: a smoke test
  resnette reproduce chapter14 --only xresnet18
  resnette reproduce chapter14 --data /path/to/imagenette2-160""",
    "bench": """examples:
  resnette bench
  resnette bench --quick""",
    "recipes": """examples:
  resnette recipes                                   # the list, one line each
  resnette recipes fast                              # one recipe's settings
  resnette train --recipe fast --data imagenette-160 # flags still override it""",
    "report": """examples:
  resnette report runs/digits-xresnet18-32px        # -> runs/digits-xresnet18-32px/report.html""",
    "runs": """examples:
  resnette runs --sort acc --where arch=xresnet18    # best first; also !=, <, >; a glob
  resnette runs diff a b                             # settings that differ, metric deltas
  resnette runs plot a b c -o curves.png             # curves overlaid; `runs html`: a page""",
    "cache": """examples:
  resnette cache clear --unused-days 30              # or --missing-source, or --all""",
}
