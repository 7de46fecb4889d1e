"""img2img for the world generator: the tail of its reverse diffusion, started from a noised init image.

SDEdit, as the diffusers img2img pipelines do it: with ``steps`` DDIM steps on the generator's schedule
(``timestep_spacing="trailing"``, as :meth:`WorldGenerator.generate`) and a ``strength`` s in (0, 1], the last
``n = min(steps, round(steps × s))`` timesteps are run; the init image x₀ is noised to the first of them,
t₀, with the scheduler's forward process ``x_t₀ = √ᾱ(t₀) x₀ + √(1 − ᾱ(t₀)) ε`` (``scheduler.add_noise``), then
denoised with classifier-free guidance exactly as in ``generate``. ``strength=1`` starts from the init
image noised to the first timestep of ``generate`` (nearly pure noise); small strengths keep the init's layout and
colours. The low-level path of the demo feeds it the VAE decoding of latents predicted from EEG.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from eegvision.sim.world.data import IMAGE_SIZE
from eegvision.sim.world.generator import WorldGenerator


def img2img_timesteps(steps: int, strength: float, sched_config: dict) -> torch.Tensor:
    """The DDIM timesteps an img2img call runs (the last ``round(steps × strength)`` of ``generate``'s)."""
    from diffusers import DDIMScheduler

    sched = DDIMScheduler(**sched_config, timestep_spacing="trailing", set_alpha_to_one=False)
    sched.set_timesteps(steps)
    n = min(steps, int(round(steps * strength)))
    return sched.timesteps[steps - n:]


@torch.no_grad()
def generate_from_images(generator: WorldGenerator, embeddings, init_images: torch.Tensor, strength: float = 0.5,
                         steps: int = 20, guidance_scale: float = 2.0, seed: int = 0, batch_size: int = 64,
                         eta: float = 0.0) -> torch.Tensor:
    """One image per (embedding, init image): the generator's reverse process from the noised init.

    Parameters
    ----------
    generator
        The world generator (:class:`~eegvision.sim.world.generator.WorldGenerator`).
    embeddings
        ``(n, cond_dim)`` world-CLIP image embeddings (L2-normalised here, as in ``generate``).
    init_images
        ``(n, 3, 32, 32)`` float images in ``[-1, 1]`` (e.g. the VAE decoding of EEG-predicted latents).
    strength
        Fraction of the ``steps``-step schedule that is run, in (0, 1]; ``steps × strength`` must round to ≥ 1.
    steps, guidance_scale, seed, batch_size, eta
        As in :meth:`WorldGenerator.generate` (the noise is one CPU ``torch.Generator`` draw).

    Returns
    -------
    torch.Tensor
        ``(n, 3, 32, 32)`` float32 CPU images in ``[-1, 1]``.
    """
    from diffusers import DDIMScheduler

    cond = torch.as_tensor(np.asarray(embeddings, dtype=np.float32) if not isinstance(embeddings, torch.Tensor)
                           else embeddings).float()
    init = torch.as_tensor(init_images).float()
    if cond.ndim != 2 or cond.shape[1] != generator.cond_dim:
        raise ValueError(f"Expected embeddings of shape (n, {generator.cond_dim}) (world-CLIP image space); got "
                         f"{tuple(cond.shape)}.")
    if init.shape != (len(cond), 3, IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"Expected init_images of shape ({len(cond)}, 3, {IMAGE_SIZE}, {IMAGE_SIZE}) in [-1, 1], one "
                         f"per embedding; got {tuple(init.shape)}.")
    if not 0.0 < strength <= 1.0 or int(round(steps * strength)) < 1:
        raise ValueError(f"strength must be in (0, 1] with steps × strength ≥ 1 (at least one denoising step); got "
                         f"strength={strength}, steps={steps}.")
    cond = F.normalize(cond, dim=-1)
    sched = DDIMScheduler(**generator.sched_config, timestep_spacing="trailing", set_alpha_to_one=False)
    sched.set_timesteps(steps)
    timesteps = img2img_timesteps(steps, strength, generator.sched_config)
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(init.shape, generator=g)
    start = sched.add_noise(init.clamp(-1, 1), noise, timesteps[:1].repeat(len(init)))
    return generator.reverse(start, cond, sched, timesteps, guidance_scale=guidance_scale, eta=eta,
                             batch_size=batch_size)


__all__ = ["generate_from_images", "img2img_timesteps"]
