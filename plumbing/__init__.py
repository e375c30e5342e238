"""Machinery with no machine learning in it: writing files safely, the command line, and how
the process uses its threads and memory. The network's files use it; a learner can skip it."""
