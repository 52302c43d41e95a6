"""The lab's loop, kept: every finished version of every run (``store``), the passes of a study and the tags
that name the important ones (``passes``), and whether an edit helped: the current pass against a baseline,
per configuration, with statistics over seeds (``compare``)."""
