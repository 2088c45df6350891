def add_simulate(commands):  # placeholder
    pass
