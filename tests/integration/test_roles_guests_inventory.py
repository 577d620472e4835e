"""The guests role's hand-over to the next play (roles/guests/tasks/inventory.yml), through
real ansible-playbook: module results (as virt_install_domains returns them with wait_for)
and the guests_list entries (their role keys) go in, add_host'ed guests with the right ansible_host, port, user and ProxyJump come out.
No guest is contacted: the second play only prints hostvars (connection: local)."""
import json

from support.ansible_run import run_playbook

NAT = {'name': 'web1', 'ansible_host': '192.168.122.47', 'ansible_port': None,
       'interfaces': [{'mac': '52:54:00:6b:3c:58', 'network': 'default', 'type': 'network',
                       'addresses': [{'address': '192.168.122.47', 'prefix': 24,
                                      'family': 'ipv4', 'source': 'lease'}]}]}
FWD = {'name': 'build1', 'ansible_host': '127.0.0.1', 'ansible_port': 2201,
       'interfaces': []}
BRIDGED = {'name': 'db1', 'ansible_host': '10.1.2.3', 'ansible_port': None,
           'interfaces': [{'mac': '52:54:00:00:00:01', 'network': None, 'type': 'bridge',
                           'addresses': []}]}
NO_ADDRESS = {'name': 'off1'}
GUESTS_LIST = [{'name': 'web1'},
               {'name': 'build1', 'ssh_user': 'ubuntu', 'inventory_groups': ['ci']},
               {'name': 'db1', 'inventory_name': 'db1.example.com'}, {'name': 'off1'}]


def test_guests_join_the_inventory_with_proxyjump_where_needed(tmp_path):
    inventory = tmp_path / 'hosts.yml'
    inventory.write_text(json.dumps({'all': {'children': {'hypervisors': {'hosts': {
        'hv1': {'ansible_host': '203.0.113.10', 'ansible_user': 'admin', 'ansible_port': 2222,
                'ansible_connection': 'ssh'}}}}}}))
    play = [
        {'hosts': 'hypervisors', 'gather_facts': False, 'tasks': [
            {'name': 'results as the guests play registers them',
             'ansible.builtin.set_fact': {'guests_list': GUESTS_LIST, 'guests_results': {
                 'results': [{'guests': [NAT, FWD, BRIDGED]}, {'guests': [NO_ADDRESS]}]}}},
            {'name': 'the hand-over under test',
             'ansible.builtin.include_role': {'name': 'kvmops.hypervisor.guests',
                                              'tasks_from': 'inventory.yml'}}]},
        {'hosts': 'kvmops_new_guests', 'gather_facts': False, 'connection': 'local',
         'tasks': [{'name': 'show', 'ansible.builtin.debug': {'msg': {
             'host': '{{ ansible_host }}', 'port': '{{ ansible_port }}',
             'user': '{{ ansible_user }}', 'args': '{{ ansible_ssh_common_args }}',
             'hv': '{{ kvmops_hypervisor }}', 'groups': '{{ group_names }}'}}}]},
    ]
    path = tmp_path / 'play.yml'
    path.write_text(json.dumps(play))
    out = run_playbook(str(path), inventory=str(inventory))
    assert out['_rc'] == 0, out['_stderr']
    shown = {}
    for play_doc in out['plays']:
        for task in play_doc['tasks']:
            if task['task']['name'] == 'show':
                for host, res in task['hosts'].items():
                    shown[host] = res['msg']
    assert sorted(shown) == ['build1', 'db1.example.com', 'web1']
    jump = '-o ProxyJump=admin@203.0.113.10:2222'
    assert shown['web1']['host'] == '192.168.122.47' and str(shown['web1']['port']) == '22'
    assert shown['web1']['user'] == 'debian' and jump in shown['web1']['args']
    assert shown['web1']['args'].split() == ['-o', 'StrictHostKeyChecking=accept-new', '-o', 'ProxyJump=admin@203.0.113.10:2222'], shown['web1']['args']
    assert shown['build1']['host'] == '127.0.0.1' and str(shown['build1']['port']) == '2201'
    assert shown['build1']['user'] == 'ubuntu' and jump in shown['build1']['args']
    assert 'ci' in shown['build1']['groups']
    assert shown['build1']['args'].split()[-2:] == ['-o', 'ProxyJump=admin@203.0.113.10:2222']
    # bridged: routable directly
    assert shown['db1.example.com']['args'].split() == ['-o', 'StrictHostKeyChecking=accept-new']
    assert shown['web1']['hv'] == 'hv1'
