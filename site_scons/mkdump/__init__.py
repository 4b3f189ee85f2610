"""mkdump-build: the pipeline stages as plain Python modules.

Each module has a pure core that tests call without SCons; site_scons/site_tools/mkdump.py wraps them as
Builders. See HACKING.md for the module contracts.
"""
