"""`nlm autoencoder train | encode | reconstruct | filters`: autoencoders on the shared trainer."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from nlm.cli.console import err_console
from nlm.cli.options import (
    MODEL,
    TRAINING,
    Activation,
    DataSpec,
    Device,
    DeviceOption,
    Force,
    Holdout,
    ImageBatch,
    ModelPath,
    Optimizer,
    Output,
    PngOutput,
    Quiet,
    Resume,
    Scale,
    ValidSpec,
    epochs_help,
    report_run,
    resume_changes,
    sizes,
)

app = typer.Typer(
    help="Autoencoders: train, encode, reconstruct, filters.",
    no_args_is_help=True,
)
AUTOENCODER_TRAINING = TRAINING.with_defaults(
    optimizer=Optimizer.adam,
    clip=0.0,
    lr_factor=0.5,
    helps={
        "lr": "Learning rate [default: Adam 1e-3; SGD 0.1].",
        "epochs": epochs_help("autoencoder", "Epochs (of fine-tuning, when stacked)"),
    },
)
ImagesOption = Annotated[
    str,
    typer.Option(
        "--data", help="Images: generated:N[:SEED], a folder, a .npz or an MNIST IDX file.", show_default=False
    ),
]
EvalBatch = Annotated[int, typer.Option("--batch-size", min=1, help="Images per forward pass.")]


class Kind(str, Enum):
    undercomplete = "undercomplete"
    sparse = "sparse"
    denoising = "denoising"
    stacked = "stacked"


class Corruption(str, Enum):
    mask = "mask"
    gaussian = "gaussian"


@app.command()
@AUTOENCODER_TRAINING
def train(
    ctx: typer.Context,
    data: DataSpec = None,
    valid: ValidSpec = None,
    holdout: Holdout = 0.1,
    batch_size: ImageBatch = 64,
    kind: Annotated[
        Kind,
        typer.Option(
            help="undercomplete: a bottleneck; sparse: L1 on the code; denoising: corrupted input, clean target; stacked: layer-wise denoising pretraining, then fine-tuning.",
            rich_help_panel=MODEL,
        ),
    ] = Kind.undercomplete,
    hidden: Annotated[
        str | None,
        typer.Option(
            help="Encoder sizes from the input side, comma-separated; the last is the code [default: 64; stacked 256,64].",
            rich_help_panel=MODEL,
        ),
    ] = None,
    code_activation: Annotated[
        Activation,
        typer.Option(help="After every encoder layer and every decoder layer but the last.", rich_help_panel=MODEL),
    ] = Activation.relu,
    output_activation: Annotated[
        Activation, typer.Option(help="On the reconstruction: sigmoid for pixels in [0, 1].", rich_help_panel=MODEL)
    ] = Activation.sigmoid,
    sparsity: Annotated[
        float | None,
        typer.Option(
            help="Weight of the L1 penalty on the code [default: sparse 1e-3, others 0].", rich_help_panel=MODEL
        ),
    ] = None,
    corruption: Annotated[
        Corruption,
        typer.Option(help="denoising, stacked: mask zeroes pixels, gaussian adds noise.", rich_help_panel=MODEL),
    ] = Corruption.mask,
    noise: Annotated[
        float, typer.Option(help="Corruption level: mask probability or gaussian std.", rich_help_panel=MODEL)
    ] = 0.25,
    pretrain_epochs: Annotated[
        int,
        typer.Option(
            help="stacked: epochs of pretraining per layer, before --epochs of fine-tuning.", rich_help_panel=MODEL
        ),
    ] = 2,
    output: Output = None,
    resume: Resume = None,
    force: Force = False,
    quiet: Quiet = False,
    training=None,
) -> None:
    """Train an autoencoder, or resume one.

    Trains into the run folder -o; with --resume RUN, continues that run in the phase it stopped in."""
    from nlm.autoencode.task import ReconstructConfig
    from nlm.autoencode.training import AutoencoderJob, autoencoder_config, resume_autoencoder, train_autoencoder
    from nlm.errors import ConfigError
    from nlm.images.sources import DEFAULT_DATA, ImageSources

    if resume is not None:
        result = resume_autoencoder(
            run_dir=resume, changes=resume_changes(ctx, training), console=err_console, quiet=quiet
        )
        return report_run(err_console, result, quiet)
    if output is None:
        raise ConfigError("nlm autoencoder train needs -o RUN_DIR (or --resume RUN_DIR)")
    model = autoencoder_config(
        kind.value,
        hidden=sizes(hidden),
        sparsity=sparsity,
        code_activation=code_activation.value,
        output_activation=output_activation.value,
        corruption=corruption.value,
        noise=noise,
    )
    job = AutoencoderJob(
        model=model,
        data=ReconstructConfig(batch_size=batch_size, pretrain_epochs=pretrain_epochs),
        sources=ImageSources(data=data or DEFAULT_DATA, valid=valid, holdout=holdout),
    )
    report_run(
        err_console,
        train_autoencoder(job=job, output=output, train=training, force=force, console=err_console, quiet=quiet),
        quiet,
    )


def _load(model: str, device: Device):
    from nlm.autoencode.inference import load_autoencoder
    from nlm.runtime import pick_device

    return load_autoencoder(model, device=pick_device(device.value))


def _images(data: str, loaded):
    from nlm.images.data import load_images

    return load_images(data, channels=loaded.image_shape[0])


@app.command()
def encode(
    model: ModelPath,
    data: ImagesOption,
    output: Annotated[
        Path,
        typer.Option("-o", "--output", help="The .npy file of codes, float32 [images, code size].", show_default=False),
    ],
    batch_size: EvalBatch = 500,
    device: DeviceOption = Device.auto,
) -> None:
    """Write every image's code, in input order, as a .npy."""
    from nlm.autoencode.inference import encode_images, write_codes

    loaded = _load(model, device)
    codes = encode_images(loaded, _images(data, loaded), batch_size=batch_size)
    write_codes(codes, output, sources=[data, loaded.path])
    err_console.print(f"wrote {codes.shape[0]:,} codes of {codes.shape[1]} values to {output}")


@app.command()
def reconstruct(
    model: ModelPath,
    data: ImagesOption,
    output: PngOutput,
    count: Annotated[int, typer.Option(min=1, help="Images to draw, the first ones (the error covers all).")] = 32,
    noise: Annotated[
        float, typer.Option(help="Corrupt the inputs at this level first (0: clean), to see denoising.")
    ] = 0.0,
    corruption: Annotated[
        Corruption | None, typer.Option(help="The corruption of --noise [default: the model's].")
    ] = None,
    scale: Scale = 2,
    device: DeviceOption = Device.auto,
) -> None:
    """Draw inputs beside their reconstructions as a PNG.

    The reconstruction error goes to stderr."""
    from nlm.autoencode.inference import reconstruct as rebuild
    from nlm.autoencode.inference import save_reconstructions

    loaded = _load(model, device)
    images = _images(data, loaded)
    kind = (corruption.value if corruption else loaded.model.config.corruption) if noise > 0 else None
    inputs, outputs, error = rebuild(loaded, images, count=count, corruption=kind, noise=noise)
    width, height = save_reconstructions(
        inputs, outputs, loaded.image_shape, output, scale=scale, sources=[data, loaded.path]
    )
    err_console.print(
        f"reconstruction MSE {error:.5f} per pixel over {len(images):,} images{f' corrupted by {kind} {noise}' if kind else ''}; "
        f"drew the first {len(inputs)} (--count {count}) beside their reconstructions, {width}x{height}, in {output}"
    )


@app.command()
def filters(
    model: ModelPath,
    output: PngOutput,
    count: Annotated[int | None, typer.Option(min=1, help="Hidden units to draw [default: all].")] = None,
    scale: Scale = 2,
) -> None:
    """Draw the first layer's weights as a PNG grid.

    One image per hidden unit: what it responds to."""
    from nlm.autoencode.inference import first_layer_units, save_first_layer_filters

    loaded = _load(model, Device.cpu)
    width, height = save_first_layer_filters(loaded, output, count=count, scale=scale)
    units = min(count or first_layer_units(loaded), first_layer_units(loaded))
    err_console.print(
        f"wrote the filters of {units} of {first_layer_units(loaded)} first-layer units ({width}x{height}) to {output}"
    )


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="autoencoder")
