"""Files the app ships, installed as the package `alexnet.assets` (pyproject.toml maps this folder there).

Found with `importlib.resources.files("alexnet.assets")` (alexnet.weights.ASSETS) in a clone with
`pip install -e .` and in an installed wheel alike. CREDITS.md says where each file comes from.
"""
