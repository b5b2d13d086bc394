"""The steps: each reads typed facts, plans purely, and hands its plan to the runner."""
