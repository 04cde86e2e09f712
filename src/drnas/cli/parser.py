"""The argument parser of ``drnas``: every subcommand, its options and their help (the CLI reference page of the
documentation is generated from it, ``docs/hooks/cli_reference.py``)."""
from __future__ import annotations

import argparse
from typing import NoReturn

from drnas.config.presets import preset_names
from drnas.config.train import PROTOCOLS
from drnas.data.formats import dataset_names
from drnas.method.strategies import method_names
from drnas.spaces import space_names
from drnas.version import __version__

#: the metrics writers a run may add (drnas.engine.writers): each a flag of search and train and a config field
WRITER_FLAGS = ("tensorboard", "wandb")
#: the budget of ``drnas derive`` and ``drnas train --arch RUN_DIR``, in the order ``Budget.parse`` takes it
BUDGET_FLAGS = ("max_params", "max_macs", "max_latency_ms", "latency_batch")


class Parser(argparse.ArgumentParser):
    """argparse's parser, whose errors are one ``drnas: error:`` line (user text in it cut short, with where to read
    the command's options) and exit 2, like every other error of drnas."""

    def error(self, message: str) -> "NoReturn":
        if len(message) > 300:  # an argument of thousands of characters echoed back
            message = f"{message[:300]}... ({len(message)} characters)"
        self.exit(2, f"drnas: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``drnas`` and its subcommands; the choices listed in the help come from the registries."""
    parser = Parser(prog="drnas", description="DrNAS: Dirichlet neural architecture search.")
    parser.add_argument("--version", action="version", version=f"drnas {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="also print debugging details (device settings, "
                                                                    "memory, compile checks) on stderr")
    commands = parser.add_subparsers(dest="command", required=True)
    _search(commands)
    _sweep(commands)
    methods = commands.add_parser("methods", help="list the search methods (--method NAME), or show one and its settings",
                                  description="List the search methods `drnas search --method` takes, each with its "
                                              "paper; with a NAME, show that method: its paper, what it does with "
                                              "the supernet and its own settings (--set method.SETTING=VALUE).")
    methods.add_argument("name", nargs="?", help="a method: show its paper, behaviour and settings")
    _show(commands)
    _sample(commands)
    _nb201(commands)
    _train(commands)
    _arch(commands)
    _derive(commands)
    _latency(commands)
    _proxies(commands)
    commands.add_parser("presets", help="list the named search presets and training protocols",
                        description="List the named settings of a search (`drnas search --preset`) and the training "
                                    "protocols (`drnas train --protocol`), each with what it sets.")
    commands.add_parser("datasets", help="list the datasets (--dataset NAME) and what --data must hold",
                        description="List the datasets `drnas search` and `drnas train` take (--dataset NAME), a "
                                    "plugin's included: classes, channels, image size, augmentation, what --data "
                                    "must hold.")
    commands.add_parser("plugins", help="list the loaded plugins and what each registered",
                        description="List the plugins loaded (installed ones, DRNAS_PLUGINS, --plugin), each with its "
                                    "version, where it was found and the methods, spaces, ops, datasets... it "
                                    "registered.")
    for command in commands.choices.values():  # -v also after the command; SUPPRESS keeps a -v given before it
        command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                             help="also print debugging details on stderr")
        # read (and imported) before parsing, by drnas.cli.main: here so that parsing accepts it and --help shows it
        command.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                             help="import MODULE first: a plugin registering methods, spaces, ops, datasets... "
                                  "(repeatable; also DRNAS_PLUGINS=mod1,mod2 and installed drnas.plugins entry points)")
    return parser


def _search(commands: argparse._SubParsersAction) -> None:
    search = commands.add_parser("search", help="run (or resume) an architecture search (DrNAS by default)",
                                 description="Run an architecture search. Values resolve as: preset < the method's "
                                             "own hyperparameters < --config file < flags and --set. The resolved "
                                             "config is saved in the run directory.")
    _add_search_options(search)
    search.add_argument("--method", help=f"search method: {', '.join(method_names())} (`drnas methods` says what "
                                         "each is); default drnas")
    search.add_argument("--dataset", help=_datasets_help("the preset's (cifar10 for nb201)"))
    search.add_argument("--data", help="dataset directory, archive or .npz file")
    search.add_argument("--seed", type=int, help="random seed of the search (default 0)")
    search.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    search.add_argument("--out", help="run directory (default runs/PRESET-DATASET-TIME)")
    search.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    search.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines (warnings only)")
    _add_writer_options(search, "at the end of the search its pictures")


def _sweep(commands: argparse._SubParsersAction) -> None:
    sweep = commands.add_parser(
        "sweep", help="run a grid of searches (methods x seeds x datasets x config fields) in parallel",
        description="Run every combination of the listed methods, seeds, datasets and --grid values as ordinary "
                    "search run directories under --out, several at a time on this machine (the cores divided "
                    "among the jobs) or as tasks on a Ray cluster (--ray), then summarise them as mean ± std over "
                    "seeds (summary.md, summary.csv, summary.png). A failed run does not stop the others; "
                    "--resume DIR retries it and continues interrupted runs from their checkpoints.")
    sweep.add_argument("--method", help=f"comma-separated search methods, e.g. drnas,darts,gdas, of "
                                        f"{', '.join(method_names())} (default drnas)")
    sweep.add_argument("--seeds", help="seeds: a range and/or a list, e.g. 0-3 or 0,2,5 (default 0)")
    sweep.add_argument("--dataset", help=f"comma-separated datasets, e.g. cifar10,cifar100, of {', '.join(dataset_names())}")
    sweep.add_argument("--data", action="append", default=[], metavar="[DATASET=]PATH",
                       help="the data: one PATH for every dataset, or DATASET=PATH per dataset (repeatable)")
    sweep.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2",
                       help="also sweep a config field, a method's setting or a stage field, e.g. --grid "
                            "partial_k=1,2,4 or --grid method.tau_min=0.1,0.5 (repeatable)")
    sweep.add_argument("--file", help="TOML sweep file: [grid] axes, [data] paths, [search] options (see the docs)")
    _add_search_options(sweep)
    sweep.add_argument("--threads", type=int, help="CPU threads per run (default: the cores divided among the jobs)")
    sweep.add_argument("--jobs", type=int, help="runs at a time on this machine (default: one per core up to 4 "
                                                 "cores, then one per 4 cores)")
    sweep.add_argument("--ray", metavar="ADDRESS", help="run on a Ray cluster: its address, 'auto', or 'local' "
                                                        "(a Ray instance on this machine); needs drnas[ray]")
    sweep.add_argument("--out", help="sweep directory (default sweeps/TIME)")
    sweep.add_argument("--resume", metavar="SWEEP_DIR", help="continue a sweep: retry failed runs, resume the rest")
    sweep.add_argument("--status", metavar="SWEEP_DIR", help="print the state of each run and an ETA, then exit")
    sweep.add_argument("--summary", metavar="SWEEP_DIR", help="rewrite the summary of a sweep directory, then exit")
    sweep.add_argument("--quiet", action="store_true", help="no line per finished run")


def _show(commands: argparse._SubParsersAction) -> None:
    show = commands.add_parser("show", help="summarise a run directory",
                               description="Summarise a search or training run: its settings, its last epoch, its "
                                           "result and (a search) the learned weight of every op on every edge.")
    show.add_argument("run_dir", help="a search or training run directory")
    show.add_argument("--json", action="store_true", help="print architecture.json instead of a summary")
    show.add_argument("--top", type=int, default=0, metavar="K",
                      help="also list the K most frequent of 1,000 architectures drawn from the learned distribution")
    show.add_argument("--plots", nargs="?", const="", metavar="DIR",
                      help="instead of the summary, write the run's pictures into DIR (default RUN/plots): the cells "
                           "(SVG, PNG), the heatmap of the learned distribution, the plots over the epochs")


def _sample(commands: argparse._SubParsersAction) -> None:
    sample = commands.add_parser("sample", help="draw architectures from the distribution a search learned",
                                 description="Draw architectures from the distribution of one epoch of a search run "
                                             "(DrNAS: Dir(beta)); each draw is derived by the space's rule.")
    sample.add_argument("run_dir", help="a search run directory")
    sample.add_argument("--n", type=int, default=100, help="draws per epoch (default 100)")
    sample.add_argument("--epoch", type=int, help="the epoch (1-based; default: the last)")
    sample.add_argument("--all-epochs", action="store_true", help="every epoch: the spread of the draws over the search")
    sample.add_argument("--benchmark", help="NB201 results CSV: the draws' test accuracies")
    sample.add_argument("--plot", help="with --all-epochs and --benchmark: a PNG of min/median/max accuracy per epoch")
    sample.add_argument("--seed", type=int, default=0, help="random seed of the draws")
    sample.add_argument("--json", action="store_true", help="print the draws of each epoch as JSON")


def _nb201(commands: argparse._SubParsersAction) -> None:
    nb201 = commands.add_parser("nb201", help="NAS-Bench-201 tools",
                                description="Look architectures up in a NAS-Bench-201 results table (a CSV you "
                                            "bring: one row per architecture string).")
    nb201_commands = nb201.add_subparsers(dest="nb201_command", required=True)
    query = nb201_commands.add_parser("query", help="print one architecture's row of an NB201 results table",
                                      description="Print every result column of one architecture's row.")
    query.add_argument("arch", help="NB201 architecture string, e.g. '|nor_conv_3x3~0|+|...|'")
    query.add_argument("--benchmark", required=True, help="NB201 results CSV")
    query.add_argument("--json", action="store_true", help="print the row as JSON")


def _train(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser("train", help="retrain an architecture from scratch (or resume a training run)",
                                description="Train an architecture's evaluation network from scratch. Values resolve "
                                            "as: protocol < --config file < flags and --set.")
    train.add_argument("--arch", help="architecture: a name (see `drnas arch --list`), a file, a search run "
                                      "directory, a Genotype(...) text or an NB201 string")
    train.add_argument("--protocol", help=f"training protocol: {', '.join(PROTOCOLS.names())} (default: by the "
                                          "architecture's space and the dataset)")
    train.add_argument("--config", help="JSON or TOML file of training config fields")
    train.add_argument("--dataset", help=_datasets_help("with --arch RUN_DIR the search's, else the protocol's, else "
                                                        "cifar10"))
    train.add_argument("--data", help="dataset directory, archive or .npz file (default with --arch RUN_DIR and the "
                                      "search's dataset: the search's)")
    train.add_argument("--download", action="store_true", help="download CIFAR into --data if it is missing")
    train.add_argument("--epochs", type=int, help="training epochs (default: the protocol's)")
    train.add_argument("--batch-size", type=int, dest="batch_size",
                       help="global batch size, split over the processes of a torchrun launch (default: the "
                            "protocol's)")
    train.add_argument("--train-images", type=int, dest="train_images", help="use only the first N training images "
                       "(ImageNet folders: N spread over the classes)")
    train.add_argument("--test-images", type=int, dest="test_images",
                       help="evaluate on only the first N test images (quicker, noisier; ImageNet folders: N spread "
                            "over the classes)")
    train.add_argument("--seed", type=int, help="random seed of the training (default 0)")
    train.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    train.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    train.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                       help="override any training config field, e.g. --set drop_path=0.2 (repeatable)")
    train.add_argument("--out", help="run directory (default runs/train-DATASET-TIME)")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue the training run in RUN_DIR")
    train.add_argument("--export", action="append", default=[], metavar="PATH",
                       help="after training, write the network without its auxiliary head to PATH, for inference "
                            "at any batch size: .pt2 for torch.export (load with torch.export.load(PATH).module()), "
                            ".pt for TorchScript, .onnx for ONNX (needs drnas[export]) (repeatable)")
    train.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines (warnings only)")
    _add_budget_options(train, " (with --arch RUN_DIR of a search: train its most probable architecture that fits)")
    _add_writer_options(train, "")


def _arch(commands: argparse._SubParsersAction) -> None:
    arch = commands.add_parser("arch", help="print an architecture with its network's parameters and MACs",
                               description="Print an architecture and the size of its evaluation network: "
                                           "parameters with and without the auxiliary head, MACs per image; or "
                                           "draw its cells (--plot), or list the named architectures (--list).")
    arch.add_argument("arch", nargs="?", help="a name, a file, a run directory, a Genotype(...) text or an NB201 string")
    arch.add_argument("--dataset", help="sets classes and input size (default: a run directory's dataset, else cifar10)")
    arch.add_argument("--protocol", help="network size from this training protocol (default: by space and dataset)")
    arch.add_argument("--channels", type=int, help="channels of the network (default: the protocol's)")
    arch.add_argument("--cells", type=int, help="cells in all of a DARTS network (default: the protocol's)")
    arch.add_argument("--json", action="store_true", help="print the architecture and its counts as JSON")
    arch.add_argument("--list", action="store_true", help="list the named architectures")
    arch.add_argument("--plot", metavar="PATH", help="instead of counting, draw the cells into PATH (.svg or .png; "
                                                     "graphviz when installed, else matplotlib)")


def _derive(commands: argparse._SubParsersAction) -> None:
    derive = commands.add_parser(
        "derive", help="the most probable architecture of a search run within a parameter/MAC/latency budget",
        description="The most probable architecture of the distribution a search run learned (per edge, the "
                    "expected mixing weights over the kept ops) whose evaluation network fits a budget: parameters "
                    "without the auxiliary head, MACs per image, latency measured on this device. Sizes may be "
                    "written 3.5M, 600M, 2e6, 1.2G or 500k. Without a budget: the run's own derivation.")
    derive.add_argument("run_dir", help="a search run directory")
    _add_budget_options(derive, "")
    derive.add_argument("--cost-table", dest="cost_table", metavar="FILE[:COLUMN]",
                        help="price --max-latency-ms (a *_ms column) or --max-cost by this cost table instead of "
                             "measuring: an op-level table (drnas latency --out) or one row per architecture "
                             "(fitted per op by least squares), e.g. nb201-latency.csv:pixel3_ms")
    derive.add_argument("--max-cost", dest="max_cost", metavar="X",
                        help="at most X of the --cost-table column, in its unit (e.g. energy in mJ)")
    derive.add_argument("--dataset", help="sets classes and input size (default: the run's dataset, else cifar10)")
    derive.add_argument("--protocol", help="network size from this training protocol (default: by space and dataset)")
    _add_size_options(derive)
    derive.add_argument("--epoch", type=int, help="the distribution of this epoch (1-based; default: the last)")
    derive.add_argument("--beam", type=int, default=64,
                        help="beam width where the space is too large to score every architecture (DARTS; default 64)")
    derive.add_argument("--device", default="auto",
                        help="where latency is measured: auto (default), cpu, cuda or cuda:N")
    derive.add_argument("--json", action="store_true", help="print the architecture, its counts and the budget as JSON")
    derive.add_argument("--select", choices=("weights", "pt"), default="weights",
                        help="weights (default): by the learned weights; pt: DARTS-PT's perturbation-based selection "
                             "on the run's trained supernet (needs its data; no budget)")
    derive.add_argument("--pt-batches", dest="pt_batches", type=int, metavar="N",
                        help="--select pt: validation batches per removal's accuracy (default 8)")
    derive.add_argument("--pt-tune-steps", dest="pt_tune_steps", type=int, metavar="N",
                        help="--select pt: weight steps of fine-tuning after each edge (default: one pass)")


def _latency(commands: argparse._SubParsersAction) -> None:
    latency = commands.add_parser(
        "latency", help="time every op of a space on this device: an op-level latency table",
        description="Time every op of a space at the input shape each edge gives it in the evaluation network "
                    "(eval-mode forward passes after warm-up, the median of --repeats), on this device at --batch "
                    "images per pass; the network's fixed parts (stem, reductions, head) are the constant. Writes "
                    "the op-level cost table (edge,op,DEVICE_BATCH_ms) that derive --cost-table and a search's "
                    "cost_table take. --check N: the table's predictions against N measured random networks.")
    latency.add_argument("--space", default="nb201", help=f"search space: {', '.join(space_names())} (default nb201)")
    latency.add_argument("--device", default="auto", help="where to time: auto (default), cpu, cuda or cuda:N")
    latency.add_argument("--batch", type=int, default=1, help="images per timed pass (default 1)")
    latency.add_argument("--dataset", default="cifar10", help="sets classes and input size (default cifar10)")
    latency.add_argument("--protocol", help="network size from this training protocol (default: by space and dataset)")
    _add_size_options(latency)
    latency.add_argument("--repeats", type=int, default=10, help="timed passes per measurement, after 3 warm-up "
                                                                 "passes; the median counts (default 10)")
    latency.add_argument("--out", metavar="FILE", help="write the op-level table to FILE (CSV)")
    latency.add_argument("--check", type=int, default=0, metavar="N",
                         help="also time N random architectures' networks and report how well the table predicts "
                              "them (Spearman, Kendall, mean relative error), e.g. 50")
    latency.add_argument("--seed", type=int, default=0, help="random seed of the --check architectures")
    latency.add_argument("--json", action="store_true", help="print the table (and the check) as JSON")


def _proxies(commands: argparse._SubParsersAction) -> None:
    proxies = commands.add_parser(
        "proxies", help="score architectures with zero-cost proxies (training-free), resumably",
        description="Score architectures of a space with zero-cost proxies: each architecture's evaluation network at "
                    "initialisation on one batch of real training images, deterministic for a seed. Scores go to "
                    "OUT/scores.jsonl as they come; the same command with the same --out continues an interrupted "
                    "scoring. With --benchmark: Spearman and Kendall rank correlations with its accuracy columns.")
    proxies.add_argument("--space", default="nb201", help=f"search space: {', '.join(space_names())} (default nb201)")
    proxies.add_argument("--dataset", default="cifar10", help=_datasets_help("cifar10"))
    proxies.add_argument("--data", help="dataset directory, archive or .npz file")
    proxies.add_argument("--archs", required=True, metavar="N|all|FILE",
                         help="N random architectures (seeded), all of them (NB201), or a FILE with one per line (or a "
                              "CSV with an arch column)")
    proxies.add_argument("--proxies", metavar="NAME[,NAME...]",
                         help="the proxies to score with (default: every registered one; docs/proxies.md lists them)")
    proxies.add_argument("--benchmark", help="NB201 results CSV: rank correlations of each proxy with its accuracies")
    proxies.add_argument("--batch", type=int, help="images in the scoring batch (default 32, as NASLib's published "
                                                   "NB201 scores)")
    proxies.add_argument("--seed", type=int, default=0, help="seed of the batch and the initial weights (default 0)")
    _add_size_options(proxies)
    proxies.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    proxies.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    proxies.add_argument("--out", help="folder of scores.jsonl (default runs/proxies-SPACE-DATASET); the same --out "
                                       "resumes")
    proxies.add_argument("--json", action="store_true", help="print the report (timing, correlations) as JSON")
    proxies.add_argument("--quiet", action="store_true", help="no progress bar or lines")


def _add_size_options(parser: argparse.ArgumentParser) -> None:
    """``--channels`` and ``--cells``: the evaluation network's size over the protocol's (derive, latency, proxies)."""
    parser.add_argument("--channels", type=int, help="channels of the network (default: the protocol's)")
    parser.add_argument("--cells", type=int, help="DARTS: cells in all; NB201: cells per stage (N) (default: the "
                                                  "protocol's)")


def _datasets_help(default: str) -> str:
    """The ``--dataset`` help: the registered datasets when the parser is built (a plugin's among them)."""
    return f"dataset: {', '.join(dataset_names())} (`drnas datasets` says what --data each needs); default {default}"


def _add_writer_options(parser: argparse.ArgumentParser, pictures: str) -> None:
    """``--tensorboard`` and ``--wandb`` of ``drnas search`` and ``drnas train`` (config fields of the same name);
    ``pictures``: what else the run writes there, if anything."""
    also = f" (and {pictures})" if pictures else ""
    parser.add_argument("--tensorboard", action="store_true",
                        help=f"also write the metrics{also} for TensorBoard into RUN/tensorboard/; needs pip install "
                             "'drnas[tensorboard]'")
    parser.add_argument("--wandb", action="store_true",
                        help=f"also send the metrics{also} to a Weights & Biases run (WANDB_MODE=offline: local files "
                             "only); needs pip install 'drnas[wandb]'")


def _add_budget_options(parser: argparse.ArgumentParser, scope: str) -> None:
    """The budget of ``drnas derive`` and ``drnas train --arch RUN_DIR`` (strings, parsed by drnas.analysis.budget)."""
    parser.add_argument("--max-params", dest="max_params", metavar="N",
                        help="at most N parameters without the auxiliary head, e.g. 3.5M" + scope)
    parser.add_argument("--max-macs", dest="max_macs", metavar="N", help="at most N multiply-accumulates per image, "
                                                                          "e.g. 600M")
    parser.add_argument("--max-latency-ms", dest="max_latency_ms", metavar="MS",
                        help="at most MS milliseconds per forward pass, measured on this device")
    parser.add_argument("--latency-batch", dest="latency_batch", metavar="B",
                        help="images per timed pass for --max-latency-ms (default 1)")


def _add_search_options(parser: argparse.ArgumentParser) -> None:
    """The options ``drnas search`` and ``drnas sweep`` share (a sweep passes them on to every run)."""
    parser.add_argument("--preset", help=f"named settings: {', '.join(preset_names())} (`drnas presets` says what "
                                         "each sets); default nb201")
    parser.add_argument("--config", help="JSON or TOML file of config fields overriding the preset")
    parser.add_argument("--space", help=f"search space: {', '.join(space_names())} (default: the preset's; another "
                                        "space leaves out the preset's ops)")
    parser.add_argument("--download", action="store_true", help="download CIFAR into --data if it is missing")
    parser.add_argument("--epochs", type=int, help="total epochs; stages and warm-ups are rescaled to fit")
    parser.add_argument("--batch-size", type=int, dest="batch_size",
                        help="global batch size, split over the processes of a torchrun launch (default: the preset's)")
    parser.add_argument("--train-images", type=int, dest="train_images",
                        help="use only the first N training images (quick runs)")
    parser.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--benchmark", help="NB201 results CSV: log the NB201 accuracies of the current cell each epoch")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override any config field, e.g. --set lr=0.05 or "
                             "--set 'stages=[{\"epochs\": 10, \"partial_k\": 2}]', or set one of the method's own "
                             "settings, e.g. --set method.tau_min=0.5 (`drnas methods NAME` lists them) or a part's, e.g. --set "
                             "part.sdarts-adv.epsilon=0.05 (repeatable)")
    parser.add_argument("--with", action="append", default=[], dest="with_parts", metavar="PART",
                        help="add a part to the method, e.g. --with sdarts-adv (a perturbation, a regulariser, "
                             "an optimizer, an early stop: `drnas methods` lists them) (repeatable)")


__all__ = ["BUDGET_FLAGS", "WRITER_FLAGS", "build_parser"]
