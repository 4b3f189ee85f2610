"""mkdump-build: the pipeline stages as plain Python modules.

Each module has a pure core that tests call without SCons; `stages` declares the pipeline, and
site_scons/site_tools/mkdump_pipeline.py turns its plan into SCons Commands. See HACKING.md for the contracts.
"""
