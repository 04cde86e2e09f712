"""The DrNAS paper's NAS-Bench-201 tables (Chen et al., ICLR 2021), for reports that put our numbers beside them.

Table 4: mean and standard deviation over 4 searches of the derived cell's NB201 accuracies (columns as in
:data:`drnas.bench.nb201.ACCURACY_COLUMNS`), keyed by our ``--method`` name. Table 1: DrNAS on NB201 CIFAR-10
with 1/K of the channels in the mixed ops (no progressive learning): test accuracy and GPU memory (MB).
"""
from __future__ import annotations

#: Table 4 rows: method -> six (mean, std) pairs in ACCURACY_COLUMNS order, and the row's label in the paper
TABLE4: dict[str, tuple[str, tuple[tuple[float, float], ...]]] = {
    "random": ("Random (baseline)", ((90.93, 0.36), (93.70, 0.36), (70.60, 1.37), (70.65, 1.38), (42.92, 2.00),
                                     (42.96, 2.15))),
    "rsps": ("RSPS", ((84.16, 1.69), (87.66, 1.69), (45.78, 6.33), (46.60, 6.57), (31.09, 5.65), (30.78, 6.12))),
    "reinforce": ("Reinforce", ((91.09, 0.37), (93.85, 0.37), (70.05, 1.67), (70.17, 1.61), (43.04, 2.18),
                                (43.16, 2.28))),
    "enas": ("ENAS", ((39.77, 0.00), (54.30, 0.00), (10.23, 0.12), (10.62, 0.27), (16.43, 0.00), (16.32, 0.00))),
    "darts": ("DARTS (1st)", ((39.77, 0.00), (54.30, 0.00), (38.57, 0.00), (38.97, 0.00), (18.87, 0.00),
                              (18.41, 0.00))),
    "darts-2nd": ("DARTS (2nd)", ((39.77, 0.00), (54.30, 0.00), (38.57, 0.00), (38.97, 0.00), (18.87, 0.00),
                                  (18.41, 0.00))),
    "gdas": ("GDAS", ((90.01, 0.46), (93.23, 0.23), (24.05, 8.12), (24.20, 8.08), (40.66, 0.00), (41.02, 0.00))),
    "snas": ("SNAS", ((90.10, 1.04), (92.77, 0.83), (69.69, 2.39), (69.34, 1.98), (42.84, 1.79), (43.16, 2.64))),
    "dsnas": ("DSNAS", ((89.66, 0.29), (93.08, 0.13), (30.87, 16.40), (31.01, 16.38), (40.61, 0.09), (41.07, 0.09))),
    "pc-darts": ("PC-DARTS", ((89.96, 0.15), (93.41, 0.30), (67.12, 0.39), (67.48, 0.89), (40.83, 0.08),
                              (41.31, 0.22))),
    "drnas": ("DrNAS", ((91.55, 0.00), (94.36, 0.00), (73.49, 0.00), (73.51, 0.00), (46.37, 0.00), (46.34, 0.00))),
}
#: Table 4's last row: the best architecture of the benchmark
TABLE4_OPTIMAL = (91.61, 94.37, 73.49, 73.51, 46.77, 47.31)

#: Table 1 (CIFAR-10): K -> ((test mean, std), GPU memory MB)
TABLE1: dict[int, tuple[tuple[float, float], int]] = {
    1: ((94.36, 0.00), 2437),
    2: ((93.49, 0.28), 1583),
    4: ((92.85, 0.35), 1159),
    8: ((91.06, 0.00), 949),
}
