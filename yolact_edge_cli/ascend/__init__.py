"""Drivers for the Ascend tools (npu-smi, atc, ais_bench) through their documented interfaces."""
