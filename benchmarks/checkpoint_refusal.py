"""Time and peak memory of load_model refusing forged configurations (a valid digest over a lying
config): ``python benchmarks/checkpoint_refusal.py``."""
import os
import resource
import tempfile
import time

import spikingrnn
from spikingrnn.io import CheckpointError, load_checkpoint, load_model, save_checkpoint
from spikingrnn.io.checkpoints import write_checkpoint


def main() -> None:
    directory = tempfile.mkdtemp()
    path = os.path.join(directory, "model.safetensors")
    save_checkpoint(path, spikingrnn.SpikingLSTM(40, 128, num_layers=2))
    tensors, header = load_checkpoint(path)
    for change in ({"hidden_size": 10 ** 9}, {"num_layers": 200000}, {"hidden_size": 10 ** 5}):
        config = {**header["model"]["config"], **change}
        forged = os.path.join(directory, "forged.safetensors")
        write_checkpoint(forged, tensors, {**header, "model": {**header["model"], "config": config}})
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        try:
            load_model(forged)
            message = "LOADED (not refused)"
        except CheckpointError as error:
            message = str(error)[len(forged) + 2:][:100]
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        print(f"{change}: {1000 * (time.perf_counter() - started):.1f} ms, peak RSS +{grown:.1f} MB: {message}")


if __name__ == "__main__":
    main()
