"""Sweeps: grids of scenarios x strategies x seeds run locally or on Ray, resumable, aggregated
(clenv sweep / compare / plot), with CL-legal hyper-parameter selection."""
