import sys

from keras_surgeon_rl.cli import main

sys.exit(main())
