"""AlexNet (Krizhevsky, Sutskever, Hinton 2012): the network and everything needed to run and train it."""
