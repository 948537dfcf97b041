"""Code that runs in AWS Lambda, packaged by the stacks (one module per function, standard library + botocore)."""
