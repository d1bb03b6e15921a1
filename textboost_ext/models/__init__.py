"""Loading Stable Diffusion bases (diffusers folders, A1111 single files) and tiny offline models."""
