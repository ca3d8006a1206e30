"""Data the detector loads (installed as ``clearmark.models``), each file with the script that
made it: ``text_lines.json`` is written by ``bench/calibrate.py``."""
