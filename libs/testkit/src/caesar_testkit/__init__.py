"""Developer tools for caesar-rest: the simulated radio sky and the stack as local processes.

They live outside ``caesar_common`` so that no service image carries numpy, scipy and
astropy just because the tests and benchmarks need a sky to point finders at; only the
workspace's dev dependency group installs this package.
"""
