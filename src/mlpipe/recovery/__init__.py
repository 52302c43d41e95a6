"""A Snakemake that dies (a killed tmux, a login node's reboot) while its jobs train costs nothing but the time
until it is back: a run's state folder is held by one live trainer at a time (:mod:`run_lock`), and a new
Snakemake first waits for the jobs the dead one left behind (:mod:`orphans`), then takes what they finished as
done (:mod:`adoption`)."""
