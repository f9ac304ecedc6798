"""``trialstudio``: the operators' command line for the SyntheticTrialStudio control plane (README "Operating")."""
