"""The same network trained with snnTorch and with SpikingJelly, each library's own way, on snnc's data.

    python benchmarks/peers.py snntorch --dataset mnist --data-dir D [--hidden 128] [--timesteps 20]
        [--epochs 1] [--batch-size 32] [--lr 1e-3] [--seed 0] [--recurrent]

prints one JSON object: {"library", "test_accuracy", "train_accuracy", "seconds", "config"}.

What is shared with ``snn-train``, so that accuracies compare: the data (snnc's loaders) and every
input spike. Batches are drawn exactly as :func:`snnc.models.train.train` draws them (one generator
seeded with ``seed`` gives each epoch's order and then each batch's spikes through
:func:`snnc.models.datasets.batch_spikes`), and the test set is encoded as
:func:`snnc.models.train.evaluate` encodes it (generator seeded 1234, batches of 256 in order); the
class is the argmax of the output spike counts, ties to the lowest index. What is each library's own:
the neuron, its surrogate gradient and the loss, as its tutorials train an MLP:

* snnTorch 1.0.0: ``nn.Linear`` + ``snntorch.Leaky`` (beta 0.95, ``fast_sigmoid(slope=25)``) per layer,
  stepped over time by hand, loss ``snntorch.functional.ce_rate_loss`` (cross-entropy at every step);
* SpikingJelly 2.0.0 ``activation_based``: ``layer.Linear`` + ``neuron.LIFNode`` (tau 2, ``ATan``,
  ``detach_reset``) per layer in multi-step mode, loss MSE between the output firing rates and the
  one-hot label (its MNIST LIF example), ``functional.reset_net`` after every batch.

Both train with Adam. ``seconds`` is the training time (all epochs, input drawing included,
evaluation excluded); ``train_accuracy`` is the last epoch's accuracy on its batches as they were
trained, as ``snn-train`` logs it.
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Any, Callable, Sequence

import torch
from torch import nn

from snnc.models.datasets import Dataset, batch_spikes, load_dataset
from snnc.models.train import predict

LIBRARIES = ("snntorch", "spikingjelly")
#: how snnc.models.train.evaluate encodes the test set
EVAL_SEED = 1234
EVAL_BATCH = 256

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _time_first(data: Dataset, index: Any, timesteps: int, g: torch.Generator) -> torch.Tensor:
    """snnc's input spikes for ``index`` as (T, batch, features), the layout both libraries step over."""
    return batch_spikes(data, index, timesteps, g, None).transpose(0, 1).contiguous()


def _decide(out: torch.Tensor) -> torch.Tensor:
    """Class per sample from output spikes (T, batch, classes): the most spikes, ties -> lowest index."""
    return predict(out.sum(0))


@torch.no_grad()
def _test(net: nn.Module, data: Dataset, timesteps: int, reset: Callable[[nn.Module], None]) -> float:
    """Accuracy on ``data``, encoded as snnc's ``evaluate`` encodes it."""
    net.eval()
    g = torch.Generator().manual_seed(EVAL_SEED)
    correct = 0
    for i in range(0, len(data.y), EVAL_BATCH):
        out = net(_time_first(data, slice(i, i + EVAL_BATCH), timesteps, g))
        reset(net)
        correct += int((_decide(out) == torch.from_numpy(data.y[i:i + EVAL_BATCH])).sum())
    return correct / len(data.y)


def _run(library: str, net: nn.Module, loss_fn: Loss, reset: Callable[[nn.Module], None],
         train_data: Dataset, test_data: Dataset, *, timesteps: int, epochs: int, batch_size: int, lr: float,
         seed: int, config: dict[str, Any]) -> dict[str, Any]:
    """Train ``net`` (T, batch, in) -> (T, batch, classes) spikes with Adam on snnc's batches, test it.
    ``reset`` clears the library's neuron states after each batch (where the library keeps them)."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    y_all = torch.from_numpy(train_data.y)
    train_accuracy = 0.0
    t0 = time.perf_counter()
    for _ in range(epochs):
        net.train()
        order = torch.randperm(len(y_all), generator=g)
        correct = 0
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            x, y = _time_first(train_data, idx, timesteps, g), y_all[idx]
            out = net(x)
            loss = loss_fn(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            reset(net)
            correct += int((_decide(out.detach()) == y).sum())
        train_accuracy = correct / len(order)
    seconds = time.perf_counter() - t0
    return {"library": library, "test_accuracy": _test(net, test_data, timesteps, reset),
            "train_accuracy": train_accuracy, "seconds": seconds,
            "config": {**config, "optimizer": "Adam", "timesteps": timesteps, "epochs": epochs,
                       "batch_size": batch_size, "lr": lr, "seed": seed, "threads": torch.get_num_threads()}}


class _SnnTorchMLP(nn.Module):
    """snnTorch's tutorial network: ``nn.Linear`` then ``snntorch.Leaky`` per layer, stepped over time
    with explicit membrane states; returns the last layer's spikes (T, batch, classes)."""

    def __init__(self, sizes: Sequence[int], beta: float, spike_grad: Callable[..., torch.Tensor],
                 recurrent: bool = False) -> None:
        import snntorch

        super().__init__()
        self.fcs = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))
        hidden = len(sizes) - 2
        self.lifs = nn.ModuleList(
            snntorch.RLeaky(beta=beta, linear_features=b, all_to_all=True, spike_grad=spike_grad)
            if recurrent and k < hidden else snntorch.Leaky(beta=beta, spike_grad=spike_grad)
            for k, b in enumerate(sizes[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import snntorch

        # 1.0.0: reset_mem() is the tutorials' init_leaky(); init_rleaky() gives (spk, mem)
        states = [lif.init_rleaky() if isinstance(lif, snntorch.RLeaky) else lif.reset_mem() for lif in self.lifs]
        out = []
        for spk in x:
            for k, (fc, lif) in enumerate(zip(self.fcs, self.lifs)):
                if isinstance(lif, snntorch.RLeaky):
                    spk, mem = lif(fc(spk), *states[k])
                    states[k] = (spk, mem)
                else:
                    spk, states[k] = lif(fc(spk), states[k])
            out.append(spk)
        return torch.stack(out)


def train_snntorch(train_data: Dataset, test_data: Dataset, sizes: Sequence[int], *, timesteps: int, epochs: int,
                   batch_size: int, lr: float, seed: int, recurrent: bool = False,
                   beta: float = 0.95) -> dict[str, Any]:
    """Train and test the MLP ``sizes`` built from snnTorch's ``Leaky`` neurons (module docstring);
    ``recurrent``: its hidden layers are ``RLeaky`` with an all-to-all recurrent ``nn.Linear``."""
    import snntorch
    from snntorch import functional, surrogate

    slope = 25
    torch.manual_seed(seed)
    net = _SnnTorchMLP(sizes, beta, surrogate.fast_sigmoid(slope=slope), recurrent)
    hidden = (f"snntorch.RLeaky(beta={beta}, all_to_all=True, reset_mechanism='subtract'), output "
              if recurrent else "")
    config = {"version": snntorch.__version__, "sizes": list(sizes),
              "neuron": hidden + f"snntorch.Leaky(beta={beta}, reset_mechanism='subtract', threshold=1.0)",
              "surrogate": f"snntorch.surrogate.fast_sigmoid(slope={slope})",
              "loss": "snntorch.functional.ce_rate_loss()"}
    return _run("snntorch", net, functional.ce_rate_loss(), lambda _: None, train_data, test_data,
                timesteps=timesteps, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, config=config)


def train_spikingjelly(train_data: Dataset, test_data: Dataset, sizes: Sequence[int], *, timesteps: int,
                       epochs: int, batch_size: int, lr: float, seed: int, recurrent: bool = False) -> dict[str, Any]:
    """Train and test the MLP ``sizes`` built from SpikingJelly's ``LIFNode`` neurons (module docstring)."""
    from importlib.metadata import version

    if recurrent:
        raise SystemExit("peers.py: --recurrent is built for snntorch (RLeaky) only")

    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    tau = 2.0
    torch.manual_seed(seed)
    net = nn.Sequential(*(m for a, b in zip(sizes, sizes[1:])
                          for m in (layer.Linear(a, b),
                                    neuron.LIFNode(tau=tau, surrogate_function=surrogate.ATan(), detach_reset=True))))
    functional.set_step_mode(net, "m")
    classes = sizes[-1]

    def rate_mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(out.mean(0), nn.functional.one_hot(y, classes).float())

    config = {"version": version("spikingjelly"), "sizes": list(sizes),
              "neuron": f"spikingjelly LIFNode(tau={tau}, v_threshold=1.0, v_reset=0.0, decay_input=True, "
                        f"detach_reset=True), step_mode 'm'",
              "surrogate": "spikingjelly.activation_based.surrogate.ATan(alpha=2.0)",
              "loss": "F.mse_loss(output firing rate, one-hot label)"}
    return _run("spikingjelly", net, rate_mse, functional.reset_net, train_data, test_data,
                timesteps=timesteps, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, config=config)


TRAINERS = {"snntorch": train_snntorch, "spikingjelly": train_spikingjelly}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Train an MLP with snnTorch or SpikingJelly on snnc's data; "
                                            "print the result as JSON.")
    p.add_argument("library", choices=LIBRARIES)
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--data-dir", default=None, help="snnc's data directory (default: $SNNC_DATA_DIR, ...)")
    p.add_argument("--hidden", type=int, nargs="*", default=[128], help="hidden layer sizes")
    p.add_argument("--timesteps", type=int, default=20)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--recurrent", action="store_true", help="hidden layers recurrent (snntorch: RLeaky)")
    p.add_argument("--beta", type=float, default=None, help="snntorch's membrane decay factor (default 0.95)")
    args = p.parse_args(argv)
    train_data, test_data = (load_dataset(args.dataset, split, 0, timesteps=args.timesteps, data_dir=args.data_dir)
                             for split in ("train", "test"))
    sizes = (train_data.input_size, *args.hidden, train_data.num_classes)
    result = TRAINERS[args.library](train_data, test_data, sizes, timesteps=args.timesteps, epochs=args.epochs,
                                    batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                                    recurrent=args.recurrent,
                                    **({"beta": args.beta} if args.beta is not None else {}))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
