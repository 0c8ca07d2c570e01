"""Neural networks behind the learned codecs (torch and compressai are imported here, never at package import)."""

import warnings

# compressai scripts a few functions at import; torch 2.14 warns about it on every run.
warnings.filterwarnings("ignore", message=".*torch.jit.script.*deprecated", category=FutureWarning)
