"""python -m nbcode.data: download or check a dataset (nbcode.data.datasets)."""
from nbcode.data.datasets import main

main()
