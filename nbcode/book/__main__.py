"""python -m nbcode.book: build the static book (nbcode.book.build)."""
from nbcode.book.build import main

main()
