"""The former name of sweep_orders, kept so that deployments started with it go on working."""

from payments.management.commands.sweep_orders import Command as SweepOrders


class Command(SweepOrders):
    help = "The former name of sweep_orders (same options): " + SweepOrders.help
