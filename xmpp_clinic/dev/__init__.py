"""Development machinery shipped with the package: private servers, the demo, its phones.

Nothing in the product imports this package; ``make demo``, the tests and the benchmarks
do. It is installed with the package so that ``xmpp-clinic demo`` works from a wheel.
"""
