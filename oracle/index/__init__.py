"""The index stage (pure): subsidy, K_e, BME_N exact and fixed point, position tokens, pricing.

``bme`` holds DESIGN.md's index formulas; ``lookup`` applies them to an agreed
history on request (the API's ``/v1/index``); ``tokens`` and ``pricing`` the
position-token toolkit built on them, with ``window`` finding the epochs a
token settles on from real retarget times; ``csvfile`` reads epoch histories
for the ``index`` and ``price`` commands.
"""
