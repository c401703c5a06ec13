"""The suite's top floor: the ``m3po`` command line, the algorithm registry, Sacred experiments, the
benchmarks and the workflow's grid. It may import every other package; none imports it."""
