"""Reports: what the bot tells a shop about how it is doing. `data` loads a period, `analysis`
is the math, `charts` draws, `files` makes what /report sends, `weekly` is the weekly job,
`slow_movers` the substitute boost, `uplift_chart` the /stats picture of the control group."""
