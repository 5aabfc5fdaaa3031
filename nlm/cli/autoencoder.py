"""`nlm autoencoder train | encode | reconstruct | filters`: autoencoders on the shared trainer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nlm.cli.console import err_console
from nlm.cli.options import (
    MODEL,
    Activation,
    AutoencoderKind,
    Corruption,
    DataSpec,
    Device,
    DeviceOption,
    EvalBatch,
    Holdout,
    ImageBatch,
    ImagesOption,
    ModelPath,
    PngOutput,
    Scale,
    ValidSpec,
    sizes,
)
from nlm.cli.training import TRAINING, Force, Output, Quiet, Resume, epochs_help, train_or_resume

app = typer.Typer(
    help="Autoencoders: train, encode, reconstruct, filters.",
    no_args_is_help=True,
)
AUTOENCODER_TRAINING = TRAINING.with_defaults(
    optimizer="adam",
    clip=0.0,
    lr_factor=0.5,
    helps={
        "lr": "Learning rate [default: Adam 1e-3; SGD 0.1].",
        "epochs": epochs_help("autoencoder", "Epochs (of fine-tuning, when stacked)"),
    },
)


@app.command()
@AUTOENCODER_TRAINING
def train(
    ctx: typer.Context,
    data: DataSpec = None,
    valid: ValidSpec = None,
    holdout: Holdout = 0.1,
    batch_size: ImageBatch = 64,
    kind: Annotated[
        AutoencoderKind,
        typer.Option(
            help="undercomplete: a bottleneck; sparse: L1 on the code; denoising: corrupted input, clean target; "
            "stacked: layer-wise denoising pretraining, then fine-tuning.",
            rich_help_panel=MODEL,
        ),
    ] = "undercomplete",
    hidden: Annotated[
        str | None,
        typer.Option(
            help="Encoder sizes from the input side, comma-separated; the last is the code "
            "[default: 64; stacked 256,64].",
            rich_help_panel=MODEL,
        ),
    ] = None,
    code_activation: Annotated[
        Activation,
        typer.Option(help="After every encoder layer and every decoder layer but the last.", rich_help_panel=MODEL),
    ] = "relu",
    output_activation: Annotated[
        Activation, typer.Option(help="On the reconstruction: sigmoid for pixels in [0, 1].", rich_help_panel=MODEL)
    ] = "sigmoid",
    sparsity: Annotated[
        float | None,
        typer.Option(
            help="Weight of the L1 penalty on the code [default: sparse 1e-3, others 0].", rich_help_panel=MODEL
        ),
    ] = None,
    corruption: Annotated[
        Corruption,
        typer.Option(help="denoising, stacked: mask zeroes pixels, gaussian adds noise.", rich_help_panel=MODEL),
    ] = "mask",
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
    from nlm.autoencode.training import AutoencoderJob, autoencoder_config
    from nlm.images.sources import DEFAULT_DATA, ImageSources

    def new_job() -> AutoencoderJob:
        model = autoencoder_config(
            kind,
            hidden=sizes(hidden),
            sparsity=sparsity,
            code_activation=code_activation,
            output_activation=output_activation,
            corruption=corruption,
            noise=noise,
        )
        return AutoencoderJob(
            model=model,
            data=ReconstructConfig(batch_size=batch_size, pretrain_epochs=pretrain_epochs),
            sources=ImageSources(data=data or DEFAULT_DATA, valid=valid, holdout=holdout),
        )

    train_or_resume(
        ctx, AutoencoderJob, new_job, output=output, resume=resume, force=force, quiet=quiet, training=training
    )


def _load(model: str, device: Device):
    from nlm.autoencode.inference import load_autoencoder
    from nlm.runtime import pick_device

    return load_autoencoder(model, device=pick_device(device))


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
    device: DeviceOption = "auto",
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
    device: DeviceOption = "auto",
) -> None:
    """Draw inputs beside their reconstructions as a PNG.

    The reconstruction error goes to stderr."""
    from nlm.autoencode.inference import reconstruct as rebuild
    from nlm.autoencode.inference import save_reconstructions

    loaded = _load(model, device)
    images = _images(data, loaded)
    kind = (corruption or loaded.model.config.corruption) if noise > 0 else None
    inputs, outputs, error = rebuild(loaded, images, count=count, corruption=kind, noise=noise)
    width, height = save_reconstructions(
        inputs, outputs, loaded.image_shape, output, scale=scale, sources=[data, loaded.path]
    )
    corrupted = f" corrupted by {kind} {noise}" if kind else ""
    err_console.print(
        f"reconstruction MSE {error:.5f} per pixel over {len(images):,} images{corrupted}; "
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

    loaded = _load(model, "cpu")
    width, height = save_first_layer_filters(loaded, output, count=count, scale=scale)
    units = min(count or first_layer_units(loaded), first_layer_units(loaded))
    err_console.print(
        f"wrote the filters of {units} of {first_layer_units(loaded)} first-layer units ({width}x{height}) to {output}"
    )


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="autoencoder")
