-- Stand-in for OSC's python/3.12 module in the SLURM tests (MODULEPATH=tests/modules). Like the real
-- one it puts its own python first on PATH; that python has no torch (it only says so), so a job
-- that ends up running it instead of the venv's fails.
whatis("Python 3.12 (mlpipe test stand-in)")
local tests = myFileName():gsub("/modules/python/3%.12%.lua$", "")
prepend_path("PATH", pathJoin(tests, "python312-stand-in"))
