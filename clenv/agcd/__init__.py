"""Active generalized category discovery (AGCD; Ma et al., CVPR 2024): GCD learners (a small
SimGCD and semi-supervised k-means), the stable label mapping, the query strategies and the
round loop over :class:`clenv.agcd_env.ActiveDiscoveryEnv`. Importing this package imports no
torch; the learners import it when they are built."""
