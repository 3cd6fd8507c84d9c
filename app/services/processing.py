async def run_iteration(resources, iteration_id):  # replaced below
    raise NotImplementedError
