"""The SCons side of mkdump-build that is more than the tool's few lines: the shared artifact cache (`cachedir`)
and SCons' signature database and decider (`signatures`). Everything here needs SCons; `mkdump` never does."""
