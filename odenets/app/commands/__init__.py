"""The commands: ``odenets train|eval|ablate|analyze`` and their command line. They use the
run's plumbing (:mod:`odenets.app.run`), its settings (:mod:`odenets.app.settings`) and the
data path (:mod:`odenets.app.data`); nothing below imports them."""
